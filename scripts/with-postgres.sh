#!/usr/bin/env bash
# with-postgres.sh CMD [ARGS...]
#
# Runs CMD with LAKESESSION_TEST_DATABASE_URL pointing at a throwaway
# PostgreSQL server on a free 127.0.0.1 port (TLS on, with a self-signed
# certificate made here), and stops and removes the server afterwards, also
# when CMD fails. When LAKESESSION_TEST_DATABASE_URL is already set, CMD runs
# against that server instead and nothing is started.
#
# The PostgreSQL binaries are looked for on PATH and under
# /usr/lib/postgresql/*/bin; when missing, the Debian postgresql package is
# installed with apt-get, and so is pgbouncer, for the tests that put one
# in front of a server of their own.
set -euo pipefail

if [ "$#" -eq 0 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

if [ -n "${LAKESESSION_TEST_DATABASE_URL:-}" ]; then
	echo "with-postgres: using the server in LAKESESSION_TEST_DATABASE_URL" >&2
	exec "$@"
fi

# apt_install installs Debian packages, as root or with sudo, updating the
# package lists once per run.
apt_updated=""
apt_install() {
	local sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	if [ -z "$apt_updated" ]; then
		$sudo apt-get update -q >&2
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >&2
}

find_bindir() {
	if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; then
		pg_config --bindir
		return
	fi
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return
		fi
	done
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return
	fi
}

bindir=$(find_bindir)
if [ -z "$bindir" ]; then
	echo "with-postgres: PostgreSQL binaries not found; installing the Debian postgresql package" >&2
	apt_install postgresql openssl
	bindir=$(find_bindir)
fi
if [ -z "$bindir" ]; then
	echo "with-postgres: no initdb/pg_ctl found even after installing postgresql" >&2
	exit 1
fi

# The server's self-signed certificate is made with openssl.
if ! command -v openssl >/dev/null 2>&1; then
	echo "with-postgres: openssl not found; installing the Debian openssl package" >&2
	apt_install openssl
fi

# The PgBouncer tests (internal/pgbouncer) run a pgbouncer of their own:
# install the Debian package when it is missing.
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
	echo "with-postgres: pgbouncer not found; installing the Debian pgbouncer package" >&2
	apt_install pgbouncer
fi

# initdb refuses to run as root: run the server as the postgres user then.
run_as=()
if [ "$(id -u)" = 0 ]; then
	if ! id postgres >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin postgres
	fi
	run_as=(runuser -u postgres --)
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/lakesession-pg.XXXXXX")
chmod 755 "$workdir"
data="$workdir/data"
log="$workdir/server.log"
mkdir -p "$data"
if [ "${#run_as[@]}" -gt 0 ]; then chown -R postgres "$workdir"; fi

started=""
cleanup() {
	local rc=$?
	if [ -n "$started" ]; then
		"${run_as[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$workdir"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${run_as[@]}" "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$workdir/initdb.log" 2>&1 ||
	"${run_as[@]}" "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C >"$workdir/initdb.log" 2>&1 || {
	cat "$workdir/initdb.log" >&2
	exit 1
}

# The server runs in a zone other than UTC (without daylight saving), so that
# code which assumes the server's clock is UTC fails its tests.
# The superuser logs in without a password over loopback; every other role
# (the Lakebase tests make their tokens real role passwords) needs one.
cat >"$data/pg_hba.conf" <<HBA
local all all trust
host  all postgres 127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
HBA

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	-keyout "$data/server.key" -out "$data/server.crt" >/dev/null 2>&1
chmod 600 "$data/server.key"
cp "$data/server.crt" "$workdir/root.crt"
chmod 644 "$workdir/root.crt"
if [ "${#run_as[@]}" -gt 0 ]; then chown postgres "$data/server.key" "$data/server.crt"; fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for attempt in 1 2 3 4 5 6 7 8; do
	port=$((20000 + RANDOM % 30000))
	port_free "$port" || continue
	if "${run_as[@]}" "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o "\
 -c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$workdir\
 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key\
 -c max_connections=400 -c shared_buffers=64MB -c fsync=off\
 -c synchronous_commit=off -c full_page_writes=off -c timezone=Asia/Kolkata" >/dev/null; then
		started=1
		break
	fi
	tail -5 "$log" >&2 || true
done
if [ -z "$started" ]; then
	echo "with-postgres: could not start PostgreSQL; server log:" >&2
	cat "$log" >&2 || true
	exit 1
fi

export LAKESESSION_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
export LAKESESSION_TEST_SSLROOTCERT="$workdir/root.crt"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (TLS on)" >&2

set +e
"$@"
rc=$?
set -e
exit $rc
