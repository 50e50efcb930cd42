"""Secrets at rest.

- API keys and device MQTT passwords are random 32-byte tokens, so a plain
  sha256 stores them safely (there is no dictionary to try against them) and
  a lookup by hash stays one indexed query.
- A device's HMAC key must stay usable for signing, so it is encrypted with
  the server secret instead: HMAC-SHA256 in counter mode as the keystream,
  then HMAC-SHA256 over nonce and ciphertext (encrypt-then-MAC), each with
  its own key derived from the server secret. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _random

from cloud.private import create_private


class SecretError(Exception):
    """A sealed secret that does not open with this server secret."""


def new_token(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + _random.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    NONCE = 16
    TAG = 32

    def __init__(self, server_secret: bytes):
        if len(server_secret) < 16:
            raise SecretError("the server secret must be at least 16 bytes")
        self._enc = hmac.new(server_secret, b"fleetflow enc v1", hashlib.sha256).digest()
        self._mac = hmac.new(server_secret, b"fleetflow mac v1", hashlib.sha256).digest()

    def _keystream(self, nonce: bytes, length: int) -> bytes:
        if length <= 32:  # a device key: one block
            return hmac.digest(self._enc, nonce + bytes(8), "sha256")[:length]
        blocks = (length + 31) // 32
        return b"".join(hmac.digest(self._enc, nonce + n.to_bytes(8, "big"), "sha256") for n in range(blocks))[:length]

    @staticmethod
    def _xor(data: bytes, stream: bytes) -> bytes:
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")

    def seal(self, plain: bytes) -> str:
        nonce = os.urandom(self.NONCE)
        cipher = self._xor(plain, self._keystream(nonce, len(plain)))
        tag = hmac.digest(self._mac, nonce + cipher, "sha256")
        return "v1:" + base64.urlsafe_b64encode(nonce + cipher + tag).decode()

    def open(self, sealed: str) -> bytes:
        if not sealed.startswith("v1:"):
            raise SecretError("unknown sealed format")
        raw = base64.urlsafe_b64decode(sealed[3:])
        nonce, cipher, tag = raw[:self.NONCE], raw[self.NONCE:-self.TAG], raw[-self.TAG:]
        if not hmac.compare_digest(tag, hmac.digest(self._mac, nonce + cipher, "sha256")):
            raise SecretError("sealed secret does not match the server secret")
        return self._xor(cipher, self._keystream(nonce, len(cipher)))


def load_server_secret(path: str) -> bytes:
    """The server secret from FLEETFLOW_SECRET (hex), else from `path`,
    created (mode 0600) on first use."""
    env = os.environ.get("FLEETFLOW_SECRET")
    if env:
        return bytes.fromhex(env) if all(c in "0123456789abcdefABCDEF" for c in env) else env.encode()
    if os.path.exists(path):
        with open(path) as fh:
            return bytes.fromhex(fh.read().strip())
    secret = os.urandom(32)
    with os.fdopen(create_private(path), "w") as fh:
        fh.write(secret.hex())
    return secret
