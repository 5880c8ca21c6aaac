"""A tiny RTSP server for tests: serves one H.264 mp4 file at ``rtsp://127.0.0.1:PORT/NAME`` in real time.

Runs under Debian's ``/usr/bin/python3`` (GStreamer's RTSP server is only importable there, through
``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0``), as a separate process started by ``tests/rtsp/rig.py``:

    /usr/bin/python3 tests/rtsp/rtsp_server.py --port 8554 --name cam --loop FILE.mp4

The H.264 stream is not re-encoded: ``qtdemux ! queue ! rtph264pay`` (all in plugins-good; rtph264pay
takes qtdemux's avc stream as it is),
sent at the file's own rate (the RTSP server's sinks sync to the clock). Audio is ignored. ``--loop`` plays
the file again from the start at its end, with running time and RTP timestamps increasing across the loop
(see ``_loop_at_end``). The media is shared between clients. Bound to ``--host`` (127.0.0.1) only.
Prints ``READY <port>`` on stdout once listening; stops on SIGTERM/SIGINT.

Deliberately Python-3-version neutral and free of keeneye imports: it runs outside the project's venv.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _loop_at_end(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
    """Play the file again when it ends, with running time (so RTP timestamps) going on increasing.

    At the demuxer's EOS (caught before the queue, which would otherwise refuse data until a flush), the
    EOS is dropped and the demuxer alone is seeked back to 0 with a flushing seek (qtdemux does not
    restart a finished stream on a non-flushing one); its flush events are dropped too, and the queue's
    sink pad gets an offset of the time played so far, so downstream sees one continuous stream.
    """
    bin_ = media.get_element()
    demux = bin_.get_by_name("d")
    queue_sink = bin_.get_by_name("q").get_static_pad("sink")
    played = {"end_ns": 0, "offset_ns": 0}

    def restart() -> bool:
        queue_sink.set_offset(played["offset_ns"] + played["end_ns"])
        played["offset_ns"] += played["end_ns"]
        played["end_ns"] = 0
        demux.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return False

    def on_data(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.type & Gst.PadProbeType.BUFFER:
            buf = info.get_buffer()
            if buf.pts != Gst.CLOCK_TIME_NONE:
                duration = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
                played["end_ns"] = max(played["end_ns"], buf.pts + duration)
            return Gst.PadProbeReturn.OK
        kind = info.get_event().type
        if kind == Gst.EventType.EOS:
            GLib.idle_add(restart)
            return Gst.PadProbeReturn.DROP
        if kind in (Gst.EventType.FLUSH_START, Gst.EventType.FLUSH_STOP) and played["offset_ns"] > 0:
            return Gst.PadProbeReturn.DROP  # the loop's own flush: downstream must not notice
        return Gst.PadProbeReturn.OK

    queue_sink.add_probe(
        Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.EVENT_FLUSH | Gst.PadProbeType.BUFFER, on_data
    )


def _pipeline(path: str) -> str:
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{location}" ! qtdemux name=d d.video_0 ! queue name=q '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="H.264 mp4 file to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="cam", help="mount path: rtsp://HOST:PORT/NAME")
    parser.add_argument("--loop", action="store_true", help="play the file again at its end")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_pipeline(args.file))
    factory.set_shared(True)
    if args.loop:
        factory.connect("media-configure", _loop_at_end)
    server.get_mount_points().add_factory("/" + args.name.strip("/"), factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 2

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
