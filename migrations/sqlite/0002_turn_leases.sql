-- Turn leases live on PostgreSQL only (chat_turn_leases), where several
-- replicas share one database. A SQLite database belongs to one process,
-- whose in-process lock already allows one turn per thread; this file keeps
-- the migration numbers of both backends in step.
SELECT 1;
