"""Ansible Vault decryption (format 1.1 and 1.2), for `!vault` values and encrypted vars files.

The format is public: a header `$ANSIBLE_VAULT;1.1;AES256` (1.2 adds `;vault-id`), then hex of
`hex(salt)\\nhex(hmac)\\nhex(ciphertext)`. Keys come from PBKDF2-HMAC-SHA256 over the password
(10,000 rounds, 80 bytes: AES key, HMAC key, counter IV); the HMAC-SHA256 of the ciphertext is
checked before AES-256-CTR decrypts it; PKCS#7 padding ends it. Only `cryptography` is used.
"""

from __future__ import annotations

import binascii
import hmac
import os
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pydantic import SecretStr

HEADER = "$ANSIBLE_VAULT"
MAX_VAULT_BYTES = 10 * 1024 * 1024
SCRIPT_TIMEOUT_S = 30.0


class VaultError(ValueError):
    """A vault that cannot be opened: no password given, wrong password, or a damaged envelope."""


def is_vault(text: str | bytes) -> bool:
    head = text[:32].lstrip() if isinstance(text, str) else text[:32].lstrip().decode("ascii", "replace")
    return head.startswith(HEADER + ";")


@dataclass
class VaultSecrets:
    """The passwords a run was given, tried in order; decryptions are cached by ciphertext."""

    passwords: list[tuple[str | None, SecretStr]] = field(default_factory=list)  # (vault id, password)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.passwords)

    def decrypt(self, envelope: str) -> str:
        """Plain text of one vault envelope; `VaultError` says which piece is missing or wrong."""
        if envelope in self._cache:
            return self._cache[envelope]
        vault_id, salt, mac, ciphertext = _parse(envelope)
        if not self.passwords:
            raise VaultError("it is vault-encrypted and no vault password was given "
                             "(--vault-password-file FILE, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE)")
        ordered = sorted(self.passwords, key=lambda item: item[0] != vault_id)  # a matching id first
        for _, password in ordered:
            plain = _try(password.get_secret_value().encode(), salt, mac, ciphertext)
            if plain is not None:
                text = plain.decode("utf-8", "replace")
                self._cache[envelope] = text
                return text
        raise VaultError("no vault password given opens it" + (f" (vault id '{vault_id}')" if vault_id else ""))


def _parse(envelope: str) -> tuple[str | None, bytes, bytes, bytes]:
    lines = envelope.strip().splitlines()
    if not lines or not is_vault(lines[0]):
        raise VaultError("not an Ansible Vault envelope")
    header = lines[0].strip().split(";")
    if len(header) < 3 or header[1] not in ("1.1", "1.2") or header[2].strip() != "AES256":
        raise VaultError(f"unsupported vault format '{lines[0].strip()[:60]}' (1.1 and 1.2 with AES256 are)")
    vault_id = header[3].strip() if header[1] == "1.2" and len(header) > 3 else None
    body = "".join(line.strip() for line in lines[1:])
    if len(body) > 2 * MAX_VAULT_BYTES:
        raise VaultError("vault body is too large")
    try:
        inner = binascii.unhexlify(body)
        salt_hex, mac_hex, cipher_hex = inner.split(b"\n", 2)
        return vault_id, binascii.unhexlify(salt_hex), binascii.unhexlify(mac_hex), binascii.unhexlify(cipher_hex.strip())
    except (binascii.Error, ValueError):
        raise VaultError("the vault body is damaged (not the hex Ansible writes)") from None


def _try(password: bytes, salt: bytes, mac: bytes, ciphertext: bytes) -> bytes | None:
    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=10000).derive(password)
    key, hmac_key, iv = derived[:32], derived[32:64], derived[64:80]
    if not hmac.compare_digest(hmac.new(hmac_key, ciphertext, "sha256").digest(), mac):
        return None
    decryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


def read_password_file(path: Path) -> SecretStr:
    """A vault password file's first line; an executable file is run and its output used, as Ansible does."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) and not path.is_dir():
            done = subprocess.run([str(path)], capture_output=True, timeout=SCRIPT_TIMEOUT_S, check=True)
            text = done.stdout.decode("utf-8", "replace")
        else:
            text = path.read_text(encoding="utf-8")
    except subprocess.CalledProcessError as exc:
        raise VaultError(f"vault password script {path} exited with {exc.returncode}") from None
    except subprocess.TimeoutExpired:
        raise VaultError(f"vault password script {path} did not finish in {SCRIPT_TIMEOUT_S:g} s") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read the vault password file {path} ({exc})") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise VaultError(f"the vault password file {path} is empty")
    return SecretStr(password)


def vault_secrets(
    files: Sequence[str | Path] = (), *, ask: bool = False, prompt: Callable[[str], str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> VaultSecrets:
    """Passwords from --vault-password-file (repeatable, `id@file` allowed), the environment, a prompt."""
    env = os.environ if environ is None else environ
    secrets = VaultSecrets()
    given = [str(f) for f in files]
    if not given and env.get("ANSIBLE_VAULT_PASSWORD_FILE"):
        given = [env["ANSIBLE_VAULT_PASSWORD_FILE"]]
    for item in given:
        vault_id, sep, name = item.partition("@")
        if not sep or Path(item).expanduser().exists():
            vault_id, name = "", item
        secrets.passwords.append((vault_id or None, read_password_file(Path(name).expanduser())))
    if ask:
        if prompt is None:
            raise VaultError("--ask-vault-pass needs an interactive terminal")
        secrets.passwords.append((None, SecretStr(prompt("Vault password: "))))
    return secrets
