-- One identity per (user, provider): a user links at most one identity at each provider, so
-- an account cannot gather extra ways in at a provider it already uses (issue 17, defect 1).
-- Links that broke this rule before (only the sign-in that linked by email could make them)
-- keep the oldest; the others are removed, so the index can be built.
DELETE FROM {t}external_accounts
WHERE EXISTS (
    SELECT 1 FROM {t}external_accounts AS older
    WHERE older.user_id = {t}external_accounts.user_id
      AND older.provider = {t}external_accounts.provider
      AND (older.created_at < {t}external_accounts.created_at
           OR (older.created_at = {t}external_accounts.created_at AND older.id < {t}external_accounts.id))
);

CREATE UNIQUE INDEX {t}external_accounts_user_provider_key ON {t}external_accounts (user_id, provider);
