-- PII redaction (RE2 patterns), one macro per kind so each kind can be counted. They are applied in
-- this order: emails first (their digits are not phones), cards before phones (a 16-digit card
-- would otherwise match as a phone), IPs before phones.
CREATE OR REPLACE TEMP MACRO redact_email(s) AS
    regexp_replace(s, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}', '[EMAIL]', 'g');
CREATE OR REPLACE TEMP MACRO redact_card(s) AS
    regexp_replace(s, '\b\d(?:[ -]?\d){12,18}\b', '[CARD]', 'g');
CREATE OR REPLACE TEMP MACRO redact_ip(s) AS
    regexp_replace(s, '\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b', '[IP]', 'g');
CREATE OR REPLACE TEMP MACRO redact_phone(s) AS
    regexp_replace(s, '\+\d{1,3}(?:[ .-]?\d{2,4}){2,5}\b|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b', '[PHONE]', 'g');
-- Only text with a digit or an '@' can hold any of the patterns: one cheap scan spares four regexes.
CREATE OR REPLACE TEMP MACRO pii_candidate(s) AS
    s IS NOT NULL AND regexp_matches(s, '[0-9@]');
