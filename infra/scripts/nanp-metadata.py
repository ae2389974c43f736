#!/usr/bin/env python3
"""Writes shared/data/phonenumber/nanp.xml: the North American Numbering Plan's territories
(country code 1), copied verbatim from the PhoneNumberMetadata.xml that the phonenumber crate
in Cargo.lock embeds (header, licence and each territory's comments included, XML order kept).

    python3 infra/scripts/nanp-metadata.py [path/to/PhoneNumberMetadata.xml]

Without an argument the file is found through `cargo metadata`. See
shared/data/phonenumber/README.md; the unit test `phone::tests::the_nanp_subset_is_the_crates_metadata`
fails when the crate's metadata and this copy differ.
"""

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def source() -> pathlib.Path:
    if len(sys.argv) > 1:
        return pathlib.Path(sys.argv[1])
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT
        )
    )
    crate = next(p for p in meta["packages"] if p["name"] == "phonenumber")
    return pathlib.Path(crate["manifest_path"]).parent / "assets" / "PhoneNumberMetadata.xml"


def main() -> None:
    text = source().read_text(encoding="utf-8")
    head, rest = text.split("<territories>\n", 1)
    body, _ = rest.split("  </territories>", 1)
    # A territory with the comment lines that precede it.
    blocks = re.findall(r"((?:[ \t]*<!--.*?-->\n)*[ \t]*<territory\b.*?</territory>\n)", body, re.S)
    nanp = [b for b in blocks if re.search(r'<territory\b[^>]*\bcountryCode="1"', b)]
    assert len(nanp) >= 20, f"only {len(nanp)} NANP territories found"
    out = head + "<territories>\n" + "".join(nanp) + "  </territories>\n</phoneNumberMetadata>\n"
    target = ROOT / "shared" / "data" / "phonenumber" / "nanp.xml"
    target.write_text(out, encoding="utf-8")
    print(f"{target}: {len(nanp)} territories, {len(out.encode())} bytes")


if __name__ == "__main__":
    main()
