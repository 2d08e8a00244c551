#!/usr/bin/env python3
"""Push files as an OCI artifact with oras-py, list tags, pull them back,
optionally delete the tag, and print what the client saw as one JSON object.

Driven by crates/cluster-tests/tests/it/t21_oras.rs; usable by hand:

    python3 scripts/oras_roundtrip.py --host 127.0.0.1:5000 --user admin \
        --password pw --repo demo/files --tag v1 --outdir /tmp/out FILE...

Exits 3 with a message when oras-py is not installed.
"""

import argparse
import json
import os
import sys


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="registry host:port (plain http)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--outdir", required=True, help="where pulled files are written")
    parser.add_argument("--chunk-size", type=int, default=0, help="> 0: chunked upload with this chunk size")
    parser.add_argument("--annotation", action="append", default=[], help="manifest annotation key=value")
    parser.add_argument("--delete", action="store_true", help="delete the tag after pulling")
    parser.add_argument("files", nargs="+")
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        import oras.provider
    except ImportError as error:
        print(f"oras-py is not installed ({error}); run `python3 -m pip install oras==0.2.43` "
              "(scripts/deps.sh does)", file=sys.stderr)
        return 3

    client = oras.provider.Registry(hostname=args.host, insecure=True, auth_backend="token")
    client.auth.set_basic_auth(args.user, args.password)
    target = f"{args.host}/{args.repo}:{args.tag}"
    annotations = dict(item.split("=", 1) for item in args.annotation)

    push_options = {}
    if args.chunk_size > 0:
        push_options = {"do_chunked": True, "chunk_size": args.chunk_size}
    response = client.push(
        target=target,
        files=args.files,
        disable_path_validation=True,
        manifest_annotations=annotations or None,
        quiet=True,
        **push_options,
    )
    result = {
        "push_status": response.status_code,
        "push_digest": response.headers.get("Docker-Content-Digest"),
        "tags": client.get_tags(f"{args.host}/{args.repo}"),
        "manifest": client.get_manifest(target),
    }
    os.makedirs(args.outdir, exist_ok=True)
    result["pulled"] = sorted(client.pull(target=target, outdir=args.outdir))
    if args.delete:
        result["deleted"] = client.delete_tag(f"{args.host}/{args.repo}", args.tag)
        result["tags_after_delete"] = client.get_tags(f"{args.host}/{args.repo}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
