-- Readiness probe of the local stack: a real query, not an open port.
SELECT 1;
