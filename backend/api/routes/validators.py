"""GET /api/tasks/{task_id}/validation: the task's validator quorum, each validator's record, every proposal."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from backend.api.deps import SessionsDep, TaskIdPath
from backend.api.schemas import ProposalOut, ValidationOut, ValidatorOut, VoteOut
from backend.crud import tasks as task_crud
from backend.crud import validators as crud

router = APIRouter(prefix="/api/tasks", tags=["validators"])


@router.get(
    "/{task_id}/validation", response_model=ValidationOut, summary="Validator quorum, records and proposals",
    responses={404: {"description": "unknown task"}},
)
async def get_validation(task_id: TaskIdPath, sessions: SessionsDep) -> ValidationOut:
    return await run_in_threadpool(_validation, sessions, task_id)


def _validation(sessions: sessionmaker[Session], task_id: int) -> ValidationOut:
    with sessions() as session:
        if not task_crud.task_exists(session, task_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"task {task_id} is not indexed (unknown task id)")
        views = crud.proposals(session, task_id)
        quorum = crud.validator_set(session, task_id)
        return ValidationOut(
            quorum=quorum.quorum if quorum else 0, validator_count=quorum.validator_count if quorum else 0,
            bond_wei=quorum.bond_wei if quorum else 0, from_round=quorum.from_round if quorum else 0,
            validators=[
                ValidatorOut(account=v.record.account, member=v.record.member, bond_wei=v.record.bond_wei,
                             slashed_wei=v.record.slashed_wei, attested=v.attested, disputed=v.disputed,
                             against_outcome=v.against_outcome)
                for v in crud.validators(session, task_id, views)
            ],
            proposals=[
                ProposalOut(
                    round=p.record.round, nonce=p.record.nonce, proposer=p.record.proposer,
                    proposal_hash=p.record.proposal_hash, new_model_cid=p.record.new_model_cid,
                    report_cid=p.record.report_cid, payout_root=p.record.payout_root,
                    payout_total_wei=p.record.payout_total_wei, attestations=p.record.attestations,
                    disputes=p.record.disputes, bond_slashed_wei=p.record.bond_slashed_wei, status=p.status,
                    votes=[VoteOut(validator=v.validator, vote="attest" if v.vote == "attest" else "dispute",
                                   block_number=v.block_number, tx_hash=v.tx_hash) for v in p.votes],
                    block_number=p.record.block_number,
                )
                for p in views
            ],
        )
