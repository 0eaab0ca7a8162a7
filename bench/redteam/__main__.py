"""`python -m bench.redteam run …`: a trainer node producing dishonest updates (FLCHAIN_REDTEAM_KIND), for
simulations only. Same flags and FLCHAIN_TRAINER_* settings as `flchain trainer run`."""

from bench.redteam.producer import red_team_from_env
from trainer.cli import trainer_commands

if __name__ == "__main__":
    trainer_commands(customize=red_team_from_env)(prog_name="python -m bench.redteam")
