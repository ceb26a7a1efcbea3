-- tasker.list_tasks takes p_with_total (sql/functions/client_reads.sql): a page may skip counting
-- every matching row. The old four-argument signature goes.
DROP FUNCTION IF EXISTS tasker.list_tasks(integer, integer, text, text);
