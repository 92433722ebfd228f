-- The fuel that each function's guest calls used, summed per minute like
-- the other aggregates.
ALTER TABLE sandtable.function_stats ADD COLUMN fuel bigint NOT NULL DEFAULT 0;
