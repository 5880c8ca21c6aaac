"""A publisher for push tests: ``python -m tests.rtsp.push FILE URL`` sends FILE's video to URL in real time.

What ``ffmpeg -re -i FILE -c copy -f rtsp -rtsp_transport tcp rtsp://HOST:PORT/NAME`` (or ``-f flv
rtmp://HOST:PORT/APP/NAME``) does, with PyAV: the video stream's packets are remuxed, not re-encoded, to an
``rtsp`` (or, for ``rtmp://``, ``flv``) output container, each one when its dts is due on the wall clock
(``-re``). FFmpeg's command-line program is not installed here; PyAV links the same libavformat, so this is
the same muxer and the same RTSP ANNOUNCE/RECORD (or RTMP publish) a camera or ``ffmpeg`` would send.

Run it as a subprocess so a test can kill it (a publisher that loses power) or let it end with the file
(a publisher that tears down). Unlike ``ffmpeg``, it retries a refused connection for ``--connect-s``
seconds, so a test need not know the exact moment the listener is bound. Exit status: 0 after the whole
file was sent, 1 when it could not connect or the connection failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import urlsplit

import av
import av.container
import av.error


def open_output(url: str, transport: str, connect_s: float) -> av.container.OutputContainer:
    """The output container for ``url``, retrying a refused connection for up to ``connect_s`` seconds."""
    scheme = urlsplit(url).scheme
    if scheme == "rtsp":
        fmt, options = "rtsp", {"rtsp_transport": transport}
    elif scheme == "rtmp":
        fmt, options = "flv", {}
    else:
        raise SystemExit(f"push: URL must be rtsp:// or rtmp://, got {url!r}")
    deadline = time.monotonic() + connect_s
    while True:
        try:
            return av.open(url, mode="w", format=fmt, options=options, timeout=5.0)
        except (av.error.ConnectionRefusedError, av.error.ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def push(path: str, url: str, *, transport: str = "tcp", connect_s: float = 5.0) -> int:
    """Send ``path``'s first video stream to ``url`` at real-time pace; the number of packets sent."""
    sent = 0
    with av.open(path) as source:
        video = source.streams.video[0]
        output = open_output(url, transport, connect_s)
        try:
            out_stream = output.add_stream_from_template(video)
            started = time.monotonic()
            first_s: float | None = None
            for packet in source.demux(video):
                if packet.dts is None or packet.time_base is None:
                    continue  # the demuxer's flush packet
                at_s = float(packet.dts * packet.time_base)
                first_s = at_s if first_s is None else first_s
                delay = started + (at_s - first_s) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                packet.stream = out_stream
                output.mux(packet)
                sent += 1
        finally:
            output.close()  # RTSP TEARDOWN / RTMP deleteStream: the publisher ends cleanly
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rtsp.push", description=__doc__.split("\n")[0])
    parser.add_argument("file", help="a video file (its first video stream is sent)")
    parser.add_argument("url", help="rtsp://HOST:PORT/NAME or rtmp://HOST:PORT/APP/NAME")
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp", help="RTSP transport")
    parser.add_argument("--connect-s", type=float, default=5.0, help="retry a refused connection this long")
    args = parser.parse_args(argv)
    try:
        sent = push(args.file, args.url, transport=args.transport, connect_s=args.connect_s)
    except av.error.FFmpegError as e:
        print(f"push: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"push: sent {sent} packets to {args.url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
