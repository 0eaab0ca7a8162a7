"""`python -m trainer run ...`: the same commands as `flchain trainer ...`, without the flchain root CLI."""

from trainer.cli import trainer_app

if __name__ == "__main__":
    trainer_app(prog_name="python -m trainer")
