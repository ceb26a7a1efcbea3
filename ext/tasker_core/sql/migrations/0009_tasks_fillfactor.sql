-- A task's row is updated once per finished step (its counters) and once when it ends. An update
-- that changes no indexed column is HOT (no new entry in any of the table's six indexes) when the
-- new row version fits on the same page; with pages packed full by inserts it never does. Room
-- left free on each page makes a chain's counter updates HOT. New pages only: existing rows keep
-- their pages until they are rewritten.
ALTER TABLE tasker.tasks SET (fillfactor = 70);
