"""Child process for test_corpus.py: renders corpus files one at a time.

Usage: python corpus_worker.py REPO_ROOT AS_LIMIT_BYTES
Reads one file path per line on stdin, answers one JSON line per path on stdout:
  {"ok": true, "width", "height", "format", "data_b64", "maxrss_kb"}
  {"ok": false, "code", "message", "maxrss_kb"}          ImageError
  {"ok": false, "crash": "ExcType: text", "maxrss_kb"}   anything else

Runs in its own process so that a hang, a crash or a memory blow-up is
reported by the parent instead of taking pytest down.
"""

from __future__ import annotations

import base64
import json
import resource
import sys
import traceback
import warnings


def peak_rss_kb() -> int:
    # VmHWM is this process's own peak; ru_maxrss would include the peak of
    # the pytest process we were forked from (it survives exec on Linux).
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    repo, as_limit = sys.argv[1], int(sys.argv[2])
    # Hard address-space cap: an allocation past it fails (MemoryError or a
    # decoder error) instead of swapping the machine to death.
    resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
    sys.path.insert(0, repo)
    warnings.simplefilter("ignore")  # Pillow's UserWarnings would only be noise on stderr

    from chalicelib.domain.imaging import ImageError, RenderSpec, render

    spec = RenderSpec("jpeg", width=800)  # the corpus README's reference pipeline
    out = sys.stdout
    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            with open(path, "rb") as fh:
                (r,) = render(fh, [spec])
            reply = {
                "ok": True,
                "width": r.width,
                "height": r.height,
                "format": r.format,
                "data_b64": base64.b64encode(r.data).decode(),
            }
        except ImageError as e:
            reply = {"ok": False, "code": e.code, "message": e.message}
        except BaseException as e:  # noqa: BLE001 - the point is to report it
            reply = {
                "ok": False,
                "crash": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=5),
            }
        reply["maxrss_kb"] = peak_rss_kb()
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
