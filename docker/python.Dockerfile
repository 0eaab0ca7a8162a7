# One image recipe for the three flchain services; pick the service with --target (trainer, aggregator, backend).
#   docker build -f docker/python.Dockerfile --target trainer -t flchain-trainer .
# CUDA: --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 --build-arg TORCH_INDEX=cu126
# Images hold code and public data only: keystores, keys and private data are mounted or passed as environment at
# run time. The trainer and aggregator images (the aggregator image also runs the validators) carry the Shakespeare
# texts, fetched while building (the `ml` stage), so a Shakespeare task never downloads anything at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ARG TORCH_INDEX=cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
      && rm -rf /var/lib/apt/lists/*; fi \
 && python3 -m venv /opt/flchain
ENV PATH=/opt/flchain/bin:$PATH
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/${TORCH_INDEX}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY flchain ./flchain
COPY trainer ./trainer
COPY aggregator ./aggregator
COPY validator ./validator
COPY backend ./backend
RUN pip install . && useradd --create-home --uid 10001 flchain \
 && mkdir -p /state /shared /locks && chown flchain /state /shared /locks
USER flchain
ENTRYPOINT ["flchain"]

FROM base AS ml
USER root
RUN python -m flchain.ml.shakespeare_fetch /opt/flchain-data/shakespeare
USER flchain
ENV FLCHAIN_SHAKESPEARE_TEXTS=/opt/flchain-data/shakespeare/texts

FROM ml AS trainer
CMD ["trainer", "run"]

FROM ml AS aggregator
CMD ["aggregator", "run"]

FROM base AS backend
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
