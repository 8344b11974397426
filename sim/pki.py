"""The module's PKI partitions (VERSIONS.md tls) as the model keeps them: files in one directory
(`python -m sim --pki DIR`), `wss_cert.<n>.pem` (client certificate n), `wss_key.<n>.pem` (its
key) and `wss_ca.<n>.pem` (CA n). No directory: every partition is empty. Entries are looked up
when an open needs them, so what the directory holds then is what the open uses; an entry that is
missing fails that open (TLS client behaviour per <auth_mode>: sim/uri.py `tls_context`)."""
from __future__ import annotations

from pathlib import Path

CERT, KEY, CA = "wss_cert", "wss_key", "wss_ca"


class PkiEntryMissing(Exception):
    """The open needs a partition entry that does not exist."""


class Pki:
    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None and not self.directory.is_dir():
            raise ValueError(f"--pki {directory}: not a directory (it holds wss_cert.<n>.pem, "
                             f"wss_key.<n>.pem and wss_ca.<n>.pem)")

    def path(self, partition: str, number: int) -> Path:
        """The file of entry `number` of `partition`; PkiEntryMissing when there is none."""
        if self.directory is not None:
            file = self.directory / f"{partition}.{number}.pem"
            if file.is_file():
                return file
        raise PkiEntryMissing(f"no {partition}.{number} in the PKI partitions"
                              + ("" if self.directory is not None else " (no --pki given)"))

    def __repr__(self) -> str:
        return f"Pki({str(self.directory) if self.directory else 'empty'})"
