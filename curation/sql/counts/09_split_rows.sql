-- Rows whose own hash put them in eval, moved to train because their prompt has rows in train.
SELECT count(*) FILTER (WHERE hashed_eval AND split = 'train') AS moved_to_train_shared_prompt
FROM split_rows
