"""A rate-limit reservation in one round trip: the rules of `brokers.limits` as SQL functions.

The reservation locks the key's rings, reads each ring's bound under the lock, and records the
grant. Done from Python it took five round trips (BEGIN, lock, read, record, COMMIT) on the path of
every order; as one function it is one statement, its own transaction. The rules themselves:

* `rate_limit_next_allowed(earlier, window, margin, tz)`: the earliest instant for a grant whose
  predecessor `count` places back was granted at `earlier`: `window + margin` seconds later, or,
  for a calendar day (`window` NULL), the first midnight in `tz` after `earlier + margin`.
* `rate_limit_reserve(...)`: every statement of a PL/pgSQL function takes a new snapshot (READ
  COMMITTED), so the reads after the lock see every grant committed by the transaction that held it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEXT_ALLOWED = """
CREATE FUNCTION rate_limit_next_allowed(earlier timestamptz, win float8, margin float8, tz text)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN win IS NULL THEN
            (date_trunc('day', (earlier + make_interval(secs => margin)) AT TIME ZONE tz) + interval '1 day')
            AT TIME ZONE tz
        ELSE earlier + make_interval(secs => win + margin)
    END
$$
"""

# The deadline is an instant (p_deadline) or seconds from the reservation (p_deadline_in).
# o_outcome: 'granted' (o_at recorded), 'refused' (o_at lies past the deadline; nothing taken) or
# 'missing' (a ring does not exist yet: the caller creates it, outside this transaction, and asks again)
RESERVE = """
CREATE FUNCTION rate_limit_reserve(
    p_key text, p_names text[], p_counts int[], p_windows float8[], p_margins float8[], p_tzs text[],
    p_deadline timestamptz, p_deadline_in float8, p_shift float8, p_spare int,
    OUT o_outcome text, OUT o_at timestamptz, OUT o_now timestamptz, OUT o_binding text)
LANGUAGE plpgsql AS $$
DECLARE
    v_locked int;
    v_ring record;
    v_predecessor timestamptz;
    v_earlier timestamptz;
    v_bound timestamptz;
    v_last_past bigint;
    v_seqs bigint[] := '{}';
    v_trims bigint[] := '{}';
BEGIN
    -- p_names is sorted: every reservation locks rings in the same order
    PERFORM 1 FROM rate_limit_rings
    WHERE api_key = p_key AND limit_name = ANY(p_names) ORDER BY limit_name FOR UPDATE;
    GET DIAGNOSTICS v_locked = ROW_COUNT;
    IF v_locked < cardinality(p_names) THEN
        o_outcome := 'missing';
        RETURN;
    END IF;
    o_now := clock_timestamp() + make_interval(secs => p_shift);
    o_at := o_now;
    FOR i IN 1 .. cardinality(p_names) LOOP
        SELECT seq, last_at, trimmed_at INTO v_ring FROM rate_limit_rings
        WHERE api_key = p_key AND limit_name = p_names[i];
        v_bound := v_ring.last_at;  -- never before the latest reservation: first come, first served
        IF v_ring.seq + 1 - p_counts[i] >= 1 THEN
            SELECT at INTO v_predecessor FROM rate_limit_grants
            WHERE api_key = p_key AND limit_name = p_names[i] AND seq = v_ring.seq + 1 - p_counts[i];
            -- a trimmed predecessor: the newest trimmed grant is at least as late
            v_earlier := coalesce(v_predecessor, v_ring.trimmed_at, v_ring.last_at);
            IF v_earlier IS NOT NULL THEN
                v_bound := greatest(v_bound, rate_limit_next_allowed(v_earlier, p_windows[i], p_margins[i], p_tzs[i]));
            END IF;
        END IF;
        IF v_bound > o_at THEN
            o_at := v_bound;
            o_binding := p_names[i];
        END IF;
        -- trimming stops at the newest grant already in the past
        SELECT seq INTO v_last_past FROM rate_limit_grants
        WHERE api_key = p_key AND limit_name = p_names[i] AND at <= o_now
        ORDER BY at DESC, seq DESC LIMIT 1;
        v_seqs := v_seqs || (v_ring.seq + 1);
        v_trims := v_trims || least(v_ring.seq + 1 - p_counts[i] - p_spare, coalesce(v_last_past, 0));
    END LOOP;
    IF o_at > coalesce(p_deadline, o_now + make_interval(secs => p_deadline_in)) THEN
        o_outcome := 'refused';
        RETURN;
    END IF;
    INSERT INTO rate_limit_grants (api_key, limit_name, seq, at)
    SELECT p_key, n.name, n.seq, o_at FROM unnest(p_names, v_seqs) AS n(name, seq);
    WITH trimmed AS (
        DELETE FROM rate_limit_grants AS g USING unnest(p_names, v_trims) AS t(name, upto)
        WHERE g.api_key = p_key AND g.limit_name = t.name AND g.seq <= t.upto
        RETURNING g.limit_name, g.at
    )
    UPDATE rate_limit_rings AS r
    SET seq = n.seq, last_at = o_at,
        idle_after = rate_limit_next_allowed(o_at, n.win, n.margin, n.tz),
        trimmed_at = greatest(r.trimmed_at, (SELECT max(t.at) FROM trimmed AS t WHERE t.limit_name = r.limit_name))
    FROM unnest(p_names, v_seqs, p_windows, p_margins, p_tzs) AS n(name, seq, win, margin, tz)
    WHERE r.api_key = p_key AND r.limit_name = n.name;
    o_outcome := 'granted';
END
$$
"""


def upgrade() -> None:
    op.execute(NEXT_ALLOWED)
    op.execute(RESERVE)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION rate_limit_reserve"
        "(text, text[], int[], float8[], float8[], text[], timestamptz, float8, float8, int)"
    )
    op.execute("DROP FUNCTION rate_limit_next_allowed(timestamptz, float8, float8, text)")
