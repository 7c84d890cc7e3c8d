#!/usr/bin/env python3
"""Single-resource pushes for bench/xds.sh, in one process (no fork per poll on a 2-core machine).

churn.py CONFIG_DIR ISTIOD_ADMIN_PORT ZTUNNEL_ADMIN N
  N times: rewrite CONFIG_DIR/churn.yaml (one workload, new revision), wait until fake-istiod has one more
  push answer, read it (push -> ACK, microseconds) and ztunnel's own apply time for it (config_dump xds).
  Prints {"push_us": [...], "apply_us": [...]}.
"""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_state import write_churn  # noqa: E402


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def main():
    config_dir, istiod_admin, zt_admin, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    answers = "http://127.0.0.1:%s/answer-latencies" % istiod_admin
    dump = "http://%s/config_dump" % zt_admin
    push_us, apply_us = [], []
    for i in range(1, n + 1):
        before = len(get(answers))
        write_churn(config_dir, i)
        deadline = time.time() + 5
        while True:
            now = get(answers)
            if len(now) > before or time.time() > deadline:
                break
            time.sleep(0.002)
        if len(now) > before:
            push_us.append(now[-1])
            apply_us.append(get(dump)["xds"]["applyMicrosLast"])
        time.sleep(0.01)
    print(json.dumps({"push_us": push_us, "apply_us": apply_us}))


if __name__ == "__main__":
    main()
