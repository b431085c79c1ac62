-- traceflow schema: `flow_index` reads only the capture it is asked for. Its grouping read frames through a
-- subquery with ORDER BY (to list each flow's frame numbers in order), and SQLite 3.40, which Debian 12's sqlite3
-- is, does not push `WHERE capture_id = ?` through two levels of subquery: every capture's frames were sorted and
-- grouped before one was picked. Grouped straight from `frames`, the capture reaches frames' primary key, and the
-- view's capture_id is the grouping's, so the WHERE lands there. Each group's frames are taken in the order the
-- scan gives them, primary-key order, which is frame-number order (a test holds the view to `traceflow query`).

DROP VIEW flow_index;
CREATE VIEW flow_index AS
SELECT g.capture_id,
       g.flow_no,
       fl.label,
       g.frames,
       fl.closed_frame IS NOT NULL AS closed,
       coalesce(fl.closed_frame, fl.first_frame) AS position
FROM (SELECT capture_id, flow_no, group_concat(number) AS frames
      FROM frames WHERE flow_no IS NOT NULL
      GROUP BY capture_id, flow_no) g
JOIN flows fl ON fl.capture_id = g.capture_id AND fl.flow_no = g.flow_no;
