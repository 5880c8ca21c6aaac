"""Frame sampling by target frame rate, decided on presentation timestamps (never the wall clock).

Rule: sampling instants are ``t0, t0 + P, t0 + 2P, ...`` with ``P = 1000 / target_fps`` milliseconds and
``t0`` the pts of the first frame offered. A frame is kept when its pts reaches the next instant not yet
served; the next instant is then the first one strictly after that frame's pts. So a 10 fps video sampled at
2 fps keeps pts 0, 500, 1000, ... ms; a target above the source rate keeps every frame; and a gap in the
stream (dropped frames, a pause in a variable-rate file) yields one frame after the gap, not a burst that
"catches up" on the missed instants.
"""

from __future__ import annotations

import math

from keeneye.core.errors import InvalidParameter

# Half a microsecond of slack: pts converted from rational time bases to float milliseconds must not miss an
# instant by rounding (e.g. 1001/30000 s steps).
_EPS_MS = 5e-4


class FpsSampler:
    """Decides, frame by frame, whether to keep a frame so that kept frames are ``1 / target_fps`` apart.

    target_fps: frames per second wanted (> 0); ``None`` keeps every frame.
    """

    def __init__(self, target_fps: float | None) -> None:
        if target_fps is not None and not (math.isfinite(target_fps) and target_fps > 0):
            raise InvalidParameter(f"target_fps must be a positive number, got {target_fps!r}")
        self.period_ms: float | None = None if target_fps is None else 1000.0 / target_fps
        self._t0_ms: float | None = None
        self._next_ms = -math.inf

    def keep(self, pts_ms: float) -> bool:
        """True when the frame at ``pts_ms`` (milliseconds) is the first one at or past the next instant."""
        if self.period_ms is None:
            return True
        if self._t0_ms is None:
            self._t0_ms = pts_ms
        if pts_ms + _EPS_MS < self._next_ms:
            return False
        # Next instant strictly after this frame: t0 + k * period with k = floor((pts - t0) / period) + 1.
        k = math.floor((pts_ms - self._t0_ms + _EPS_MS) / self.period_ms) + 1
        self._next_ms = self._t0_ms + k * self.period_ms
        return True
