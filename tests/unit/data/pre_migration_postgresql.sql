-- The index schema as flchain's create_all built it before migrations existed (the Alembic baseline adopts it).

CREATE TABLE checkpoint (
	id SERIAL NOT NULL, 
	chain_id BIGINT NOT NULL, 
	coordinator VARCHAR(42) NOT NULL, 
	deploy_block BIGINT NOT NULL, 
	block_number BIGINT NOT NULL, 
	block_hash VARCHAR(66), 
	PRIMARY KEY (id)
);

CREATE TABLE claims (
	tx_hash VARCHAR(66) NOT NULL, 
	log_index BIGINT NOT NULL, 
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	account VARCHAR(42) NOT NULL, 
	leaf_index VARCHAR(78) NOT NULL, 
	amount_wei VARCHAR(78) NOT NULL, 
	block_number BIGINT NOT NULL, 
	PRIMARY KEY (tx_hash, log_index)
);

CREATE INDEX ix_claims_account_task ON claims (account, task_id);

CREATE INDEX ix_claims_leaf ON claims (task_id, round, leaf_index);

CREATE INDEX ix_claims_task_id ON claims (task_id);

CREATE TABLE payouts (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	leaf_index VARCHAR(78) NOT NULL, 
	account VARCHAR(42) NOT NULL, 
	amount_wei VARCHAR(78) NOT NULL, 
	proof JSON NOT NULL, 
	PRIMARY KEY (task_id, round, leaf_index)
);

CREATE INDEX ix_payouts_account_task_leaf ON payouts (account, task_id, round, leaf_index);

CREATE TABLE raw_events (
	tx_hash VARCHAR(66) NOT NULL, 
	log_index BIGINT NOT NULL, 
	block_number BIGINT NOT NULL, 
	block_hash VARCHAR(66) NOT NULL, 
	name VARCHAR(40) NOT NULL, 
	args JSON NOT NULL, 
	PRIMARY KEY (tx_hash, log_index)
);

CREATE INDEX ix_raw_events_block_number ON raw_events (block_number);

CREATE INDEX ix_raw_events_name ON raw_events (name);

CREATE TABLE report_fetches (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	error TEXT, 
	attempts INTEGER NOT NULL, 
	next_attempt_at FLOAT NOT NULL, 
	PRIMARY KEY (task_id, round)
);

CREATE INDEX ix_report_fetches_status ON report_fetches (status);

CREATE TABLE reputations (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	trainer VARCHAR(42) NOT NULL, 
	mu BIGINT NOT NULL, 
	sigma VARCHAR(78) NOT NULL, 
	score BIGINT NOT NULL, 
	block_number BIGINT NOT NULL, 
	tx_hash VARCHAR(66) NOT NULL, 
	PRIMARY KEY (task_id, round, trainer)
);

CREATE INDEX ix_reputations_trainer_task_round ON reputations (trainer, task_id, round);

CREATE TABLE round_reports (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	aggregation_rule VARCHAR(64) NOT NULL, 
	accepted INTEGER NOT NULL, 
	rejected INTEGER NOT NULL, 
	budget_wei VARCHAR(78) NOT NULL, 
	payout_tree_cid TEXT NOT NULL, 
	val_loss_before FLOAT, 
	val_accuracy_before FLOAT, 
	val_loss_after FLOAT, 
	val_accuracy_after FLOAT, 
	eval_samples BIGINT NOT NULL, 
	PRIMARY KEY (task_id, round)
);

CREATE TABLE score_entries (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	account VARCHAR(42) NOT NULL, 
	digest VARCHAR(66) NOT NULL, 
	cid TEXT NOT NULL, 
	num_samples VARCHAR(78) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	reason TEXT, 
	update_norm FLOAT, 
	loss_before FLOAT, 
	loss_after FLOAT, 
	loss_score FLOAT, 
	loo_score FLOAT, 
	rating_mu FLOAT, 
	rating_sigma FLOAT, 
	final_score FLOAT, 
	payout_wei VARCHAR(78) NOT NULL, 
	payout_index BIGINT, 
	slash_bps INTEGER NOT NULL, 
	slash_reason INTEGER, 
	PRIMARY KEY (task_id, round, account)
);

CREATE INDEX ix_score_entries_account_task_round ON score_entries (account, task_id, round);

CREATE TABLE slashes (
	tx_hash VARCHAR(66) NOT NULL, 
	log_index BIGINT NOT NULL, 
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	trainer VARCHAR(42) NOT NULL, 
	amount_wei VARCHAR(78) NOT NULL, 
	reason_code INTEGER NOT NULL, 
	evidence_cid TEXT NOT NULL, 
	block_number BIGINT NOT NULL, 
	PRIMARY KEY (tx_hash, log_index)
);

CREATE INDEX ix_slashes_task_id ON slashes (task_id);

CREATE INDEX ix_slashes_trainer_task ON slashes (trainer, task_id, block_number, log_index);

CREATE TABLE submissions (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	trainer VARCHAR(42) NOT NULL, 
	digest VARCHAR(66) NOT NULL, 
	cid TEXT NOT NULL, 
	num_samples VARCHAR(78) NOT NULL, 
	block_number BIGINT NOT NULL, 
	tx_hash VARCHAR(66) NOT NULL, 
	log_index BIGINT NOT NULL, 
	PRIMARY KEY (task_id, round, trainer)
);

CREATE INDEX ix_submissions_trainer ON submissions (trainer);

CREATE TABLE tasks (
	task_id BIGINT NOT NULL, 
	sponsor VARCHAR(42) NOT NULL, 
	token VARCHAR(42) NOT NULL, 
	reward_per_round_wei VARCHAR(78) NOT NULL, 
	min_stake_wei VARCHAR(78) NOT NULL, 
	window_s BIGINT NOT NULL, 
	finalize_timeout_s BIGINT NOT NULL, 
	unstake_cooldown_s BIGINT NOT NULL, 
	max_slash_bps INTEGER NOT NULL, 
	model_spec_hash VARCHAR(66) NOT NULL, 
	initial_model_digest VARCHAR(66) NOT NULL, 
	initial_model_cid TEXT NOT NULL, 
	aggregators JSON NOT NULL, 
	pool_wei VARCHAR(78) NOT NULL, 
	owed_wei VARCHAR(78) NOT NULL, 
	total_staked_wei VARCHAR(78) NOT NULL, 
	funded_wei VARCHAR(78) NOT NULL, 
	reclaimed_wei VARCHAR(78) NOT NULL, 
	current_round BIGINT NOT NULL, 
	closed BOOLEAN NOT NULL, 
	created_block BIGINT NOT NULL, 
	created_tx VARCHAR(66) NOT NULL, 
	PRIMARY KEY (task_id)
);

CREATE INDEX ix_tasks_sponsor ON tasks (sponsor);

CREATE TABLE rounds (
	task_id BIGINT NOT NULL, 
	round BIGINT NOT NULL, 
	base_model_digest VARCHAR(66) NOT NULL, 
	base_model_cid TEXT NOT NULL, 
	eval_commitment VARCHAR(66) NOT NULL, 
	window_end BIGINT NOT NULL, 
	opened_block BIGINT NOT NULL, 
	opened_tx VARCHAR(66) NOT NULL, 
	submissions INTEGER NOT NULL, 
	finalized BOOLEAN NOT NULL, 
	new_model_digest VARCHAR(66), 
	new_model_cid TEXT, 
	report_digest VARCHAR(66), 
	report_cid TEXT, 
	eval_cid TEXT, 
	payout_root VARCHAR(66), 
	payout_total_wei VARCHAR(78) NOT NULL, 
	claimed_wei VARCHAR(78) NOT NULL, 
	finalized_block BIGINT, 
	finalized_tx VARCHAR(66), 
	PRIMARY KEY (task_id, round), 
	FOREIGN KEY(task_id) REFERENCES tasks (task_id)
);

CREATE TABLE trainers (
	task_id BIGINT NOT NULL, 
	address VARCHAR(42) NOT NULL, 
	stake_wei VARCHAR(78) NOT NULL, 
	staked_total_wei VARCHAR(78) NOT NULL, 
	withdrawn_wei VARCHAR(78) NOT NULL, 
	slashed_wei VARCHAR(78) NOT NULL, 
	earned_wei VARCHAR(78) NOT NULL, 
	claimed_wei VARCHAR(78) NOT NULL, 
	unstake_requested_at BIGINT, 
	last_round BIGINT NOT NULL, 
	submissions INTEGER NOT NULL, 
	reputation_mu BIGINT, 
	reputation_sigma VARCHAR(78), 
	reputation_score BIGINT, 
	reputation_round BIGINT, 
	first_block BIGINT NOT NULL, 
	PRIMARY KEY (task_id, address), 
	FOREIGN KEY(task_id) REFERENCES tasks (task_id)
);

CREATE INDEX ix_trainers_address ON trainers (address);

CREATE INDEX ix_trainers_task_mu ON trainers (task_id, reputation_mu);
