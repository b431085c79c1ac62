-- Schema 3 on PostgreSQL: a connection's directed flows as an array of flow numbers, `flow_nos`, beside the
-- comma-separated `flows` text that SQLite's schema has (and ad-hoc SQL may read).
--
-- Why: the read side found a connection's flows with `flow_no = ANY (string_to_array(flows, ',')::BIGINT[])`.
-- The planner turned that EXISTS into a hash semi-join of all flows against all connections with the parse as
-- its filter, which is quadratic in the flows of a capture when the server has no statistics yet (right after
-- an ingest). Readers now look a connection's flows up by the flows key, `flow_no = ANY (flow_nos)`, in a
-- subquery kept correlated.
--
-- A stored generated column: every writer (COPY, ad-hoc INSERT) fills it from `flows`, and adding it computes it
-- for the connections already there.
ALTER TABLE connections
    ADD COLUMN flow_nos BIGINT[] GENERATED ALWAYS AS (string_to_array(flows, ',')::BIGINT[]) STORED;
