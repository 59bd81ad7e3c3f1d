-- PII redaction, stage one: what a pattern alone identifies, as RE2 macros (one per kind, so each
-- kind can be counted), applied in this order: secrets first (a key's or a private-key block's
-- digits are nobody's phone), then emails (their digits are not phones). Stage two is the Python
-- UDF `pii_checked` (curation/pii.py: IP addresses, IBANs, cards, SSNs, phones), for the texts
-- `pii_py_candidate` selects: those kinds need a checksum, a parser or a look at the characters
-- around a match (RE2 has no lookbehind: `06.12.34.56.78` is a French phone, not an IPv4 address).
-- An email needs an '@': a memchr-fast contains() spares the regex the rest.
-- Every secret below has a '-' or '_' in its prefix, or starts with AKIA, ASIA or AIza, or is a JWT
-- (eyJ...): single-character contains() are memchr-fast, and the rarer capitals gate the longer
-- prefixes (0.2 s per million 300-byte texts, against 1.1 s for one regexp_matches of the prefixes).
CREATE OR REPLACE TEMP MACRO secret_gate(s) AS
    contains(s, '-') OR contains(s, '_')
    OR (contains(s, 'A') AND (contains(s, 'AKIA') OR contains(s, 'ASIA') OR contains(s, 'AIza')))
    OR (contains(s, 'J') AND contains(s, 'eyJ'));
-- (In a projection DuckDB evaluates both sides of AND and OR for every row; CASE evaluates a branch
-- only for the rows that reach it.)
CREATE OR REPLACE TEMP MACRO secret_candidate(s) AS
    CASE WHEN secret_gate(s)
        THEN regexp_matches(s, 'sk-|k_live_|k_test_|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abposr]-|AIza|eyJ|PRIVATE KEY')
        ELSE false END;
CREATE OR REPLACE TEMP MACRO redact_secret(s) AS
    CASE WHEN secret_candidate(s) THEN regexp_replace(s,
        '(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)'
        || '|\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}'
        || '|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}'
        || '|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b'
        || '|\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}'
        || '|\bxox[abposr]-[A-Za-z0-9-]{10,}'
        || '|\bAIza[0-9A-Za-z_-]{35}'
        || '|\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*',
        '[SECRET]', 'g') ELSE s END;
CREATE OR REPLACE TEMP MACRO redact_email(s) AS
    CASE WHEN contains(s, '@')
        THEN regexp_replace(s, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}', '[EMAIL]', 'g') ELSE s END;
-- What stage two can find in a text: a run of 7 or more digits and separators (a phone, card, SSN,
-- IBAN or IPv4 address has one), a hex group followed by a colon-delimited one (IPv6), or an IBAN's
-- start.
CREATE OR REPLACE TEMP MACRO pii_py_candidate(s) AS
    regexp_matches(s, '[0-9][0-9 ()./\x{00A0}\x{2010}-\x{2015}-]{5,}[0-9]|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:'
        || '|::[0-9A-Fa-f]|[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4}');
-- Only text with a digit or an '@', or a secret's prefix, can hold any of the patterns. Eleven
-- memchr-fast contains() cost less than one regexp_matches(s, '[0-9@]') (measured: 0.2 s against
-- 1.1 s per 300 MB); the secrets' prefixes are only looked for in the texts without either.
CREATE OR REPLACE TEMP MACRO pii_candidate(s) AS
    CASE
        WHEN s IS NULL THEN false
        WHEN contains(s, '@') OR contains(s, '0') OR contains(s, '1') OR contains(s, '2') OR contains(s, '3')
            OR contains(s, '4') OR contains(s, '5') OR contains(s, '6') OR contains(s, '7') OR contains(s, '8')
            OR contains(s, '9') THEN true
        ELSE secret_candidate(s)
    END;
-- Characters after trimming whitespace. trim() copies the string, so it runs only for text that
-- starts or ends with whitespace (starts_with/ends_with are O(1)); the rest is length(s).
CREATE OR REPLACE TEMP MACRO trimmed_length(s) AS
    CASE
        WHEN starts_with(s, ' ') OR ends_with(s, ' ') OR starts_with(s, chr(10)) OR ends_with(s, chr(10))
            OR starts_with(s, chr(9)) OR ends_with(s, chr(9)) OR starts_with(s, chr(13)) OR ends_with(s, chr(13))
            THEN length(trim(s, ' ' || chr(9) || chr(10) || chr(13)))
        ELSE length(s)
    END;
-- Length checks that read as little of the text as they can: strlen() is the byte count, O(1),
-- and a text has at least a quarter as many characters as bytes; length() counts characters.
CREATE OR REPLACE TEMP MACRO longer_than(s, n) AS
    strlen(s) > n AND length(s) > n;
CREATE OR REPLACE TEMP MACRO shorter_than(s, n) AS
    CASE
        WHEN strlen(s) >= 4 * n AND NOT (starts_with(s, ' ') OR ends_with(s, ' ') OR starts_with(s, chr(10))
            OR ends_with(s, chr(10)) OR starts_with(s, chr(9)) OR ends_with(s, chr(9))
            OR starts_with(s, chr(13)) OR ends_with(s, chr(13))) THEN false
        ELSE trimmed_length(s) < n
    END;
