-- Ingest success rate by domain, largest domains first.
SELECT
    dataset_uri,
    domain,
    count(*) AS samples,
    count(*) FILTER (WHERE status = 'success') AS successes,
    round(100.0 * count(*) FILTER (WHERE status = 'success') / count(*), 1) AS success_pct
FROM ingest_latest
GROUP BY ALL
ORDER BY samples DESC, domain, dataset_uri;
