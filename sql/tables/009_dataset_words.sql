-- The most frequent caption words of each dataset a distance run compared (English stop words left out).
CREATE TABLE dataset_words (
    run_id   VARCHAR NOT NULL,
    dataset  VARCHAR NOT NULL,
    rank     INTEGER NOT NULL,        -- 1 = most frequent
    word     VARCHAR NOT NULL,
    count    BIGINT NOT NULL,
    share    DOUBLE NOT NULL,         -- count / all non-stop-word tokens of the dataset's sampled captions
    time     TIMESTAMPTZ NOT NULL
);
