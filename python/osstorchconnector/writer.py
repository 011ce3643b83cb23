"""ObjectWriter: a write-only binary file whose bytes become an object, atomically."""

from __future__ import annotations

import io
import logging
from types import TracebackType
from typing import TYPE_CHECKING

from ._core import Upload

if TYPE_CHECKING:
    from typing_extensions import Buffer

log = logging.getLogger("osstorchconnector")


class ObjectWriter(io.BufferedIOBase):
    """Bytes written here become the object at :attr:`uri` when :meth:`close` completes.

    Until then the object keeps its old content (or stays absent). An exception inside a
    ``with`` block, a part that fails after its retries, Ctrl-C, or a writer garbage-collected
    unclosed all abort the upload: the old object is untouched and no pending multipart
    upload is left behind. ``torch.save(state_dict, writer)`` works, as does any code that
    writes to a binary file.

    Parts of ``checkpointConfig.uploadIoSizeMB`` (16) go up while you write, up to
    ``uploadConcurrency`` at once; at most ``uploadBufferSizeMB`` (256) are held in memory, and
    :meth:`write` waits while that much is. A body smaller than one part is one PutObject.
    """

    def __init__(self, upload: Upload, uri: str) -> None:
        super().__init__()
        self._upload = upload
        self._uri = uri
        self._finished = False  # completed or aborted

    @property
    def uri(self) -> str:
        """The object being written, ``oss://bucket/key``."""
        return self._uri

    @property
    def name(self) -> str:
        """Same as :attr:`uri` (what file objects call their path)."""
        return self._uri

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def write(self, data: Buffer) -> int:
        """Appends ``data`` (any bytes-like object); returns how many bytes were taken.

        Raises:
            ValueError: the writer is closed or was aborted.
            OssError: the upload failed (it has been aborted; the old object is unchanged).
        """
        if self.closed:
            raise ValueError(f"write to a closed writer of {self._uri}")
        try:
            return self._upload.write(data)
        except BaseException:
            self.abort()  # Ctrl-C included; a failed upload was aborted already
            raise

    def tell(self) -> int:
        """Bytes written so far."""
        return self._upload.written

    def flush(self) -> None:
        """Nothing to do: parts go up as they fill, and the object appears at :meth:`close`."""
        if self.closed:
            raise ValueError(f"flush of a closed writer of {self._uri}")

    def close(self) -> None:
        """Completes the upload: the object now holds everything written.

        Raises:
            OssError: the upload failed; it has been aborted and the old object is unchanged.
        """
        if self.closed:
            return
        try:
            if not self._finished:
                self._finished = True
                self._upload.close()
        finally:
            super().close()

    def abort(self) -> None:
        """Abandons the upload: the object keeps its old content. Idempotent."""
        if not self._finished:
            self._finished = True
            try:
                self._upload.abort()
            except Exception as e:  # the error being handled matters more
                log.warning("could not abort the upload of %s: %s", self._uri, e)
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # io.IOBase would close() — that is, complete — an abandoned writer; abort it instead.
        if not getattr(self, "_finished", True):
            log.warning("a writer of %s was dropped unclosed: its upload is aborted", self._uri)
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"ObjectWriter({self._uri!r}, {state})"
