"""CPU time to decompress one gzip landing file with ISA-L (what the sync uses) and with the gzip module.

    .venv/bin/python bench/gzip_speed.py FILE.gz    # e.g. a generated 1M-event day's events-<day>.jsonl.gz

Two reads each, 16 MiB blocks, process time of this process.
"""

import gzip
import sys
import time

from isal import igzip


def main(path: str) -> None:
    for name, opener in (("isal.igzip", igzip.GzipFile), ("gzip", gzip.GzipFile)):
        for _ in range(2):
            start, n = time.process_time(), 0
            with open(path, "rb") as raw, opener(fileobj=raw, mode="rb") as fh:
                while block := fh.read(16 << 20):
                    n += len(block)
            print(f"{name}: {n:,} bytes in {time.process_time() - start:.2f} s of CPU", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
