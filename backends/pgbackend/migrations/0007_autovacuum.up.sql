-- Version 7: vacuum the jobs table after a fixed number of dead rows, not
-- after a fifth of the table (PostgreSQL's default). Every job leaves dead
-- versions behind (pending, running, then done), and the entries of the
-- ones that left the waiting states stay in jobs_due's first pages, which
-- Reserve walks, until a vacuum removes them. With a fifth of the table as
-- the threshold, a table that retains 5,000,000 finished jobs lets a
-- million of them pile up between vacuums, and a Reserve then costs
-- thousands of buffers instead of a few (docs/benchmarks.md, Retention).
-- A fixed threshold makes a big table vacuumed as often as a small one,
-- and no cost delay lets the vacuum finish while its dead prefix is short;
-- finished jobs' pages are all-visible, so it skips them in the heap.
ALTER TABLE {{schema}}.jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);
