#!/usr/bin/env python3
"""Makes synthetic exports of Clerk and Auth0, as their tools write them, for authctl's tests
and its import benchmark.

The password digests are made by Python's `bcrypt` package, an implementation independent of
the Rust one that verifies them at sign-in. The files hold unicode names, a user listed twice,
malformed lines, an unsupported hasher, organizations with admins, members and a custom role.

    generate_exports.py OUT_DIR [--users N] [--auth0-users N] [--orgs N] [--cost 4]
                        [--distinct-hashes K] [--seed S]

Writes into OUT_DIR: clerk_users.csv, clerk_organizations.json, clerk_memberships.json,
clerk_roles.json, auth0_users.ndjson, auth0_hashes.ndjson, and manifest.json: what a correct
import must find (passwords by external id, the lines that must fail, the expected roles).
"""

import argparse
import csv
import json
import os
import random

import bcrypt

NAMES = ["Zoë", "Jürgen", "Åsa", "Renée", "Łukasz", "Ngozi", "Chloé", "Dmitrij", "Siân", "José",
         "Aiko", "Ömer", "Pál", "Maëlle", "Kofi", "Ana"]
SURNAMES = ["Ünal", "Núñez", "O'Brien", "Søren", "Müller", "Dvořák", "Nakamura", "Brontë",
            "Kowalczyk", "García", "Ó Súilleabháin", "Ng"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--auth0-users", type=int, default=20)
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--cost", type=int, default=4)
    parser.add_argument("--distinct-hashes", type=int, default=0,
                        help="hash only this many passwords and reuse them (0: one per user)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    pool = []
    if args.distinct_hashes:
        for i in range(args.distinct_hashes):
            password = f"pool-password-{i}-Kq3!"
            pool.append((password, bcrypt.hashpw(password.encode(), bcrypt.gensalt(args.cost)).decode()))

    def password_and_digest(i, prefix):
        if pool:
            return pool[i % len(pool)]
        password = f"{prefix}-pässwörd-{i}-{rng.randrange(10**6)}"
        return password, bcrypt.hashpw(password.encode(), bcrypt.gensalt(args.cost)).decode()

    manifest = {"clerk": {}, "auth0": {}, "failed_lines": {}, "reset_required": [],
                "duplicate_ids": [], "roles": {}, "owners": {}, "google": {}}

    # --- Clerk: the dashboard's user export. ---
    header = ["id", "first_name", "last_name", "username", "primary_email_address",
              "primary_phone_number", "verified_email_addresses", "unverified_email_addresses",
              "verified_phone_numbers", "unverified_phone_numbers", "totp_secret",
              "password_digest", "password_hasher"]
    rows = []
    clerk_ids = []
    for i in range(args.users):
        uid = f"user_2{rng.randrange(16**20):020x}"
        password, digest = password_and_digest(i, "clerk")
        first, last = rng.choice(NAMES), rng.choice(SURNAMES)
        email = f"clerk.{i}@example.com"
        verified = i % 5 != 4
        rows.append([uid, first, last, "", email, "", email if verified else "",
                     "" if verified else email, "", "", "", digest, "bcrypt"])
        manifest["clerk"][uid] = {"email": email, "password": password, "verified": verified,
                                  "name": f"{first} {last}"}
        clerk_ids.append(uid)
    # An unsupported hasher: imported without a password, reported.
    uid = "user_2unsupportedhasher000001"
    rows.append([uid, "Pbkdf", "User", "", "pbkdf2.user@example.com", "", "pbkdf2.user@example.com",
                 "", "", "", "", "pbkdf2_sha256$260000$c2FsdA$aGFzaA", "pbkdf2_sha256"])
    manifest["reset_required"].append(uid)
    # The same user twice (a re-export appended): the second is unchanged, never a duplicate.
    rows.append(list(rows[0]))
    manifest["duplicate_ids"].append(rows[0][0])
    with open(os.path.join(args.out, "clerk_users.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
        base = len(rows) + 2  # the header is line 1
        # Malformed rows: a bad email, no id, a garbage digest with the bcrypt hasher.
        f.write("user_2bademail0000000001,Bad,Email,,not-an-email,,,,,,,,\n")
        f.write(",No,Id,,noid@example.com,,noid@example.com,,,,,,\n")
        f.write("user_2garbagedigest00001,Garbage,Digest,,garbage@example.com,,garbage@example.com,,,,,$2b$10$tooshort,bcrypt\n")
    manifest["failed_lines"]["clerk_users.csv"] = [base, base + 1]
    manifest["reset_required"].append("user_2garbagedigest00001")

    # --- Clerk: organizations and memberships (Backend API pages). ---
    orgs, memberships = [], []
    custom = {"org:billing": "member"}
    for o in range(args.orgs):
        oid = f"org_2{rng.randrange(16**20):020x}"
        members = clerk_ids[o * 5:(o * 5) + 5]
        creator = members[0]
        orgs.append({"object": "organization", "id": oid, "name": f"Ünïcorn Works {o}",
                     "slug": f"unicorn-works-{o}", "created_at": 1700000000000 + o,
                     "created_by": creator, "members_count": len(members)})
        manifest["owners"][oid] = creator
        manifest["roles"][oid] = {}
        for j, member in enumerate(members):
            role = "org:admin" if j in (0, 1) else ("org:billing" if j == 2 else "org:member")
            memberships.append({"object": "organization_membership", "id": f"orgmem_{o}_{j}",
                                "role": role, "created_at": 1700000000000 + j,
                                "organization": {"id": oid},
                                "public_user_data": {"user_id": member}})
            ours = {"org:admin": "admin", "org:member": "member"}.get(role, custom.get(role))
            manifest["roles"][oid][member] = "owner" if member == creator else ours
    # A membership of a user who is not in the export: reported (by its position in the
    # page), not imported.
    if orgs:
        memberships.append({"object": "organization_membership", "id": "orgmem_ghost",
                            "role": "org:member", "organization": {"id": orgs[0]["id"]},
                            "public_user_data": {"user_id": "user_2ghost"}})
        manifest["failed_lines"]["clerk_memberships.json"] = [len(memberships)]
    with open(os.path.join(args.out, "clerk_organizations.json"), "w", encoding="utf-8") as f:
        json.dump({"data": orgs, "total_count": len(orgs)}, f, ensure_ascii=False)
    with open(os.path.join(args.out, "clerk_memberships.json"), "w", encoding="utf-8") as f:
        json.dump({"data": memberships, "total_count": len(memberships)}, f, ensure_ascii=False)
    with open(os.path.join(args.out, "clerk_roles.json"), "w", encoding="utf-8") as f:
        json.dump(custom, f)

    # --- Auth0: the bulk user export (NDJSON) and the password hash export. ---
    users_lines, hash_lines = [], []
    for i in range(args.auth0_users):
        oid = f"{rng.randrange(16**24):024x}"
        email = f"auth0.{i}@example.com"
        name = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"
        if i % 4 == 3:
            # A Google user: no password, an identity keyed on Google's subject.
            sub = str(100000000000000000000 + i)
            uid = f"google-oauth2|{sub}"
            users_lines.append({"user_id": uid, "email": email, "email_verified": True,
                                "name": name, "created_at": "2021-03-05T16:40:09.367Z",
                                "identities": [{"provider": "google-oauth2", "user_id": sub,
                                                "connection": "google-oauth2", "isSocial": True}]})
            manifest["auth0"][uid] = {"email": email, "password": None, "verified": True, "name": name}
            manifest["google"][uid] = sub
            continue
        uid = f"auth0|{oid}"
        password, digest = password_and_digest(10_000 + i, "auth0")
        users_lines.append({"user_id": uid, "email": email, "email_verified": i % 2 == 0,
                            "name": name, "created_at": "2020-01-02T03:04:05.678Z",
                            "identities": [{"provider": "auth0", "user_id": oid,
                                            "connection": "Username-Password-Authentication",
                                            "isSocial": False}]})
        hash_lines.append({"_id": {"$oid": oid}, "email": email, "email_verified": i % 2 == 0,
                           "passwordHash": digest, "password_set_date": {"$date": "2020-01-02T03:04:05.678Z"},
                           "tenant": "example", "connection": "Username-Password-Authentication"})
        manifest["auth0"][uid] = {"email": email, "password": password, "verified": i % 2 == 0, "name": name}
    with open(os.path.join(args.out, "auth0_users.ndjson"), "w", encoding="utf-8") as f:
        for line in users_lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        bad = len(users_lines) + 1
        f.write('{"user_id": "auth0|broken", "email": \n')  # not JSON
        f.write('{"user_id": "auth0|noemail"}\n')
    manifest["failed_lines"]["auth0_users.ndjson"] = [bad, bad + 1]
    with open(os.path.join(args.out, "auth0_hashes.ndjson"), "w", encoding="utf-8") as f:
        for line in hash_lines:
            f.write(json.dumps(line) + "\n")

    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
