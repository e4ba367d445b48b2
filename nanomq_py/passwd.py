"""Print a pwd.conf entry whose password is stored hashed, so the file on a
device gives no password away.

    nanomq-passwd alice                      # asks twice, nothing echoed
    printf %s 's3cret' | nanomq-passwd alice  # or reads stdin when it is not a terminal
    nanomq-passwd alice >> /etc/nanomq_pwd.conf

prints  "alice": "pbkdf2_sha256$100000$<salt>$<base64>"

The broker checks such a password once per process in a worker thread (about
0.1 s on a desktop core, 0.5 s on a Raspberry Pi 4 at the default iterations)
and remembers it after that; --iterations trades that cost against the cost of
guessing from a leaked file.
"""

import argparse
import getpass
import json
import sys

from .broker.passwords import PBKDF2_ITERATIONS, hash_password


def _read_password():
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        sys.exit("nanomq-passwd: the passwords differ")
    return first


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="nanomq-passwd", description="Print a pwd.conf line with a PBKDF2-SHA256 hashed password."
    )
    parser.add_argument("username")
    parser.add_argument(
        "--iterations",
        type=int,
        default=PBKDF2_ITERATIONS,
        help=f"PBKDF2 rounds (default {PBKDF2_ITERATIONS})",
    )
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    password = _read_password()
    if not password:
        sys.exit("nanomq-passwd: the password is empty")
    print(f"{json.dumps(args.username)}: {json.dumps(hash_password(password, args.iterations))}")


if __name__ == "__main__":
    main()
