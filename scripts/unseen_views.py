#!/usr/bin/env python3
"""How often an unseen view of a demo gallery person finds that person first (search by image
over the HTTP API). The demo gallery holds shots 0-3 of each test person; `ivt synth
--images-per-identity 6` renders those identically plus shots 4 and 5, which it lacks:

  ivt synth --images-per-identity 6 --splits test --out /tmp/synth6
  ivt serve &
  scripts/unseen_views.py /tmp/synth6 http://localhost:8080 --shot 04 [--exact]
"""
import argparse
import base64
import json
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("synth_dir")
p.add_argument("base_url")
p.add_argument("--shot", default="04", help="two-digit shot number (04 or 05 are unseen)")
p.add_argument("--exact", action="store_true", help="exact search instead of the HNSW graph")
args = p.parse_args()

hits = total = 0
with open(f"{args.synth_dir}/test.jsonl") as manifest:
    for row in map(json.loads, manifest):
        if not row["image_id"].endswith(f"_{args.shot}.jpg"):
            continue
        with open(f"{args.synth_dir}/{row['path']}", "rb") as f:
            image = base64.b64encode(f.read()).decode()
        body = json.dumps({"image": image, "top_k": 1, "exact": args.exact}).encode()
        request = urllib.request.Request(
            f"{args.base_url}/v1/search", body, {"content-type": "application/json"}
        )
        result = json.load(urllib.request.urlopen(request))["results"]
        total += 1
        hits += bool(result) and result[0]["person_id"] == row["person_id"]
print(json.dumps({"shot": args.shot, "exact": args.exact, "first_is_the_person": hits, "queries": total}))
