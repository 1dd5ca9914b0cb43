-- Signing keys for Backstage user tokens. Shared by every replica, kept across restarts.
CREATE TABLE auth_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    -- PKCS#8 DER of the P-256 private key, base64.
    private_key TEXT NOT NULL,
    -- The public key as a JWK (JSON text).
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
