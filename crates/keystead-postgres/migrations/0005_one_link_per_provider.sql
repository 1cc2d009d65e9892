-- One identity per (user, provider): a user links at most one identity at each provider, so
-- an account cannot gather extra ways in at a provider it already uses (issue 17, defect 1).
-- Links that broke this rule before (only the sign-in that linked by email could make them)
-- keep the oldest; the others are removed, so the index can be built.
DELETE FROM {t}external_accounts AS newer
USING {t}external_accounts AS older
WHERE newer.user_id = older.user_id
  AND newer.provider = older.provider
  AND (newer.created_at, newer.id) > (older.created_at, older.id);

CREATE UNIQUE INDEX external_accounts_user_provider_key ON {t}external_accounts (user_id, provider);
