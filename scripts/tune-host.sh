#!/usr/bin/env bash
# Check, apply and revert the kernel settings wsherd wants for runs with many sockets
# (100k+ connections per host, several processes).
#
# Usage: scripts/tune-host.sh [check|apply|revert]
#
#   check   (default) read-only: prints each sysctl's current and wanted value and
#           OK/CHANGE, then the open-file and locked-memory limits of this shell.
#           Always exits 0 when it could read its configuration.
#   apply   needs root. Saves the current values to a backup file first (once: a
#           later apply keeps the first backup), then writes the values that need
#           changing. Idempotent: a second apply changes nothing. Settings that cannot
#           be changed (read-only /proc/sys in a container, conntrack module not
#           loaded) are reported, not fatal.
#   revert  needs root. Restores the values saved by the first apply and moves the
#           backup aside, so a later apply takes a fresh one.
#
# The wanted values, and how each is compared ("# check:" lines), are read from
# tuning/99-wsherd.conf: the single source of truth, the same file that can be
# installed in /etc/sysctl.d to persist them. Values only grow: a setting that is
# already more generous than wanted is left alone. apply changes the running kernel
# only; nothing under /etc is written (see tuning/README.md to persist).
#
# Environment (for tests and unusual hosts):
#   WSHERD_SYSCTL_ROOT   root of the sysctl tree (default /proc/sys); values are read
#                        and written as files below it. Root is required only when
#                        this is /proc/sys.
#   WSHERD_TUNE_STATE    directory of the backup file (default /var/lib/wsherd/tune-host)
#   WSHERD_TUNE_CONF     sysctl file with the wanted values (default tuning/99-wsherd.conf)
#   WSHERD_TUNE_LIMITS   limits.d file with the wanted limits (default
#                        tuning/99-wsherd-limits.conf)
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONF=${WSHERD_TUNE_CONF:-$REPO_DIR/tuning/99-wsherd.conf}
LIMITS_CONF=${WSHERD_TUNE_LIMITS:-$REPO_DIR/tuning/99-wsherd-limits.conf}
SYSCTL_ROOT=${WSHERD_SYSCTL_ROOT:-/proc/sys}
SYSCTL_ROOT=${SYSCTL_ROOT%/}
STATE_DIR=${WSHERD_TUNE_STATE:-/var/lib/wsherd/tune-host}
BACKUP=$STATE_DIR/sysctl.backup

die() {
    echo "tune-host: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------------------------------
# Parsing sysctl.d-style files: "key = value" lines, "#"/";" comments, a leading "-"
# marks an optional setting, "# check: MODE" applies to the next setting.
# Fills P_KEYS, P_VALS (fields separated by one space), P_MODES, P_OPT.

P_KEYS=()
P_VALS=()
P_MODES=()
P_OPT=()

trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    s=${s%"${s##*[![:space:]]}"}
    printf '%s' "$s"
}

# Collapses whitespace (the kernel separates fields with tabs) to single spaces.
normalize() {
    local -a f
    read -ra f <<<"$1" || true
    printf '%s' "${f[*]}"
}

parse_sysctl_file() {
    local file=$1 line mode="" key val opt n=0 x
    local -a fields
    P_KEYS=()
    P_VALS=()
    P_MODES=()
    P_OPT=()
    [[ -r $file ]] || die "cannot read $file"
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        line=$(trim "$line")
        if [[ $line =~ ^#[[:space:]]*check:[[:space:]]*([A-Za-z-]+)[[:space:]]*$ ]]; then
            mode=${BASH_REMATCH[1]}
            case $mode in
            at-least | range | buffers | exact) ;;
            *) die "$file:$n: unknown check mode '$mode' (at-least, range, buffers, exact)" ;;
            esac
            continue
        fi
        [[ -z $line || $line == \#* || $line == \;* ]] && continue
        [[ $line == *=* ]] || die "$file:$n: not a 'key = value' line: $line"
        key=$(trim "${line%%=*}")
        val=$(normalize "${line#*=}")
        opt=0
        if [[ $key == -* ]]; then
            opt=1
            key=${key#-}
        fi
        [[ $key =~ ^[A-Za-z0-9_./-]+$ ]] || die "$file:$n: bad key '$key'"
        [[ -n $val ]] || die "$file:$n: $key has no value"
        read -ra fields <<<"$val"
        for x in "${fields[@]}"; do
            [[ $x =~ ^[0-9]+$ ]] || die "$file:$n: $key: '$x' is not a number"
        done
        P_KEYS+=("$key")
        P_VALS+=("$val")
        P_MODES+=("${mode:-exact}")
        P_OPT+=("$opt")
        mode=""
    done <"$file"
}

key_path() {
    printf '%s/%s' "$SYSCTL_ROOT" "${1//.//}"
}

# Reads a setting into CUR (normalized). Returns 1 when the file is not there, 2 when
# it cannot be read.
read_setting() {
    local path raw
    path=$(key_path "$1")
    CUR=""
    [[ -e $path ]] || return 1
    raw=$(cat -- "$path" 2>/dev/null) || return 2
    CUR=$(normalize "$raw")
    return 0
}

# Writes a value and reads it back. On failure sets WRITE_ERR and returns 1.
write_setting() {
    local key=$1 val=$2 path err
    path=$(key_path "$key")
    WRITE_ERR=""
    if ! err=$({ printf '%s\n' "$val" >"$path"; } 2>&1); then
        WRITE_ERR=${err##*: }
        [[ -n $WRITE_ERR ]] || WRITE_ERR="write failed"
        return 1
    fi
    if ! read_setting "$key"; then
        WRITE_ERR="cannot read back"
        return 1
    fi
    if [[ $CUR != "$val" ]]; then
        WRITE_ERR="the kernel kept $CUR"
        return 1
    fi
    return 0
}

# Compares a current value with the wanted one under a check mode. Sets TARGET (the
# value to write: the wanted one, without lowering anything already more generous)
# and WANT_DESC (for people). The current value is OK when it equals TARGET.
evaluate() {
    local mode=$1 cur=$2 want=$3 i
    local -a c w t
    read -ra c <<<"$cur" || true
    read -ra w <<<"$want" || true
    TARGET=$want
    case $mode in
    exact) WANT_DESC="= $want" ;;
    at-least) WANT_DESC=">= $want" ;;
    range) WANT_DESC="covers $want" ;;
    buffers) WANT_DESC="<=${w[0]:-?} <=${w[1]:-?} >=${w[2]:-?}" ;;
    esac
    [[ $mode == exact ]] && return 0
    # Only merge well-formed values with the same number of fields.
    [[ ${#c[@]} -eq ${#w[@]} ]] || return 0
    for i in "${c[@]}"; do
        [[ $i =~ ^[0-9]+$ ]] || return 0
    done
    case $mode in
    at-least)
        for i in "${!w[@]}"; do
            t[i]=$((c[i] > w[i] ? c[i] : w[i]))
        done
        ;;
    range)
        [[ ${#w[@]} -eq 2 ]] || die "$CONF: range needs two fields: $want"
        t=($((c[0] < w[0] ? c[0] : w[0])) $((c[1] > w[1] ? c[1] : w[1])))
        ;;
    buffers)
        [[ ${#w[@]} -eq 3 ]] || die "$CONF: buffers needs three fields: $want"
        t=($((c[0] < w[0] ? c[0] : w[0])) $((c[1] < w[1] ? c[1] : w[1])) $((c[2] > w[2] ? c[2] : w[2])))
        ;;
    esac
    TARGET="${t[*]}"
}

is_real_proc() {
    local real
    real=$(cd "$SYSCTL_ROOT" 2>/dev/null && pwd -P) || real=$SYSCTL_ROOT
    [[ $real == /proc/sys ]]
}

need_root() {
    if is_real_proc && [[ $EUID -ne 0 ]]; then
        die "$1 changes kernel settings and needs root: sudo $0 $1"
    fi
}

# ---------------------------------------------------------------------------------------

row() {
    printf '%-32s %-24s %-28s %s\n' "$@"
}

# Limits of this shell compared with the "*" lines of the limits.d file.
check_limits() {
    local domain type item value cur want wdesc status flag
    declare -A wanted=()
    if [[ -r $LIMITS_CONF ]]; then
        while read -r domain type item value _; do
            [[ $domain == "*" ]] || continue
            [[ $item == nofile || $item == memlock ]] || continue
            [[ $type == soft || $type == hard ]] || continue
            wanted[$item.$type]=$value
        done <"$LIMITS_CONF"
    fi
    echo
    echo "Limits of this shell (wanted: ${LIMITS_CONF#"$REPO_DIR/"}; per process, set at login):"
    row "limit" "current" "wanted" "status"
    for item in nofile memlock; do
        for type in soft hard; do
            [[ $item == nofile ]] && flag=n || flag=l
            if [[ $type == soft ]]; then
                cur=$(ulimit -S -"$flag")
            else
                cur=$(ulimit -H -"$flag")
            fi
            want=${wanted[$item.$type]:-}
            if [[ -z $want ]]; then
                status="-"
            elif [[ $want == unlimited || $want == infinity || $want == -1 ]]; then
                [[ $cur == unlimited ]] && status=OK || status=LOW
            elif [[ $cur == unlimited ]] || { [[ $cur =~ ^[0-9]+$ ]] && ((cur >= want)); }; then
                status=OK
            else
                status=LOW
            fi
            [[ $item == memlock && $cur != unlimited ]] && cur="$cur KiB"
            [[ $item == memlock && $want =~ ^[0-9]+$ ]] && want="$want KiB"
            case $want in
            "") wdesc="(not in file)" ;;
            unlimited | infinity | -1) wdesc=unlimited ;;
            *) wdesc=">= $want" ;;
            esac
            row "$item ($type)" "$cur" "$wdesc" "$status"
        done
    done
    echo "(LOW limits: install tuning/99-wsherd-limits.conf and log in again, or the systemd"
    echo " drop-in tuning/wsherd.service.d/limits.conf for services; wsherd raises its soft"
    echo " open-file limit to the hard one itself.)"
}

cmd_check() {
    local i key want mode status rc changes=0 note
    parse_sysctl_file "$CONF"
    echo "Kernel settings under $SYSCTL_ROOT (wanted: ${CONF#"$REPO_DIR/"}):"
    row "setting" "current" "wanted" "status"
    for i in "${!P_KEYS[@]}"; do
        key=${P_KEYS[i]}
        want=${P_VALS[i]}
        mode=${P_MODES[i]}
        rc=0
        read_setting "$key" || rc=$?
        if ((rc == 1)); then
            evaluate "$mode" "" "$want"
            if ((P_OPT[i])); then
                status="SKIP (not present: module not loaded?)"
            else
                status="MISSING (not present in this kernel)"
            fi
            row "$key" "-" "$WANT_DESC" "$status"
            continue
        elif ((rc == 2)); then
            evaluate "$mode" "" "$want"
            row "$key" "?" "$WANT_DESC" "UNREADABLE"
            continue
        fi
        evaluate "$mode" "$CUR" "$want"
        if [[ $CUR == "$TARGET" ]]; then
            status=OK
        else
            changes=$((changes + 1))
            note=""
            [[ -w $(key_path "$key") ]] || note=" (read-only here)"
            status="CHANGE -> $TARGET$note"
        fi
        row "$key" "$CUR" "$WANT_DESC" "$status"
    done
    if ((changes > 0)); then
        echo "$changes setting(s) to change: sudo $0 apply (backs up the current values; revert undoes it)"
    else
        echo "All settings as wanted."
    fi
    check_limits
    return 0
}

cmd_apply() {
    local i key want mode rc changed=0 unchanged=0 failed=0 skipped=0 tmp
    need_root apply
    parse_sysctl_file "$CONF"
    local -a keys=("${P_KEYS[@]}") vals=("${P_VALS[@]}") modes=("${P_MODES[@]}") opts=("${P_OPT[@]}")

    # 1. Back up before changing anything. The first backup is kept; settings it does
    #    not hold yet (added to the conf, or a module loaded since) are appended.
    mkdir -p -- "$STATE_DIR" || die "cannot create $STATE_DIR for the backup; nothing changed"
    declare -A saved=()
    if [[ -f $BACKUP ]]; then
        parse_sysctl_file "$BACKUP"
        for i in "${!P_KEYS[@]}"; do
            saved[${P_KEYS[i]}]=1
        done
        echo "Keeping the existing backup $BACKUP (values from before the first apply)."
    else
        tmp=$BACKUP.tmp.$$
        {
            echo "# wsherd tune-host backup: kernel settings before the first apply"
            echo "# taken $(date -u +%Y-%m-%dT%H:%M:%SZ) from $SYSCTL_ROOT; restore with: $0 revert"
        } >"$tmp" || die "cannot write $tmp; nothing changed"
        mv -f -- "$tmp" "$BACKUP" || die "cannot write $BACKUP; nothing changed"
        echo "Backup of the current values: $BACKUP"
    fi
    for i in "${!keys[@]}"; do
        key=${keys[i]}
        [[ -n ${saved[$key]:-} ]] && continue
        if read_setting "$key"; then
            printf '%s = %s\n' "$key" "$CUR" >>"$BACKUP" || die "cannot write $BACKUP; nothing changed"
            saved[$key]=1
        fi
    done

    # 2. Apply.
    for i in "${!keys[@]}"; do
        key=${keys[i]}
        want=${vals[i]}
        mode=${modes[i]}
        rc=0
        read_setting "$key" || rc=$?
        if ((rc == 1)); then
            if ((opts[i])); then
                echo "skipped        $key: not present (module not loaded?)"
                skipped=$((skipped + 1))
            else
                echo "CANNOT CHANGE  $key: not present in this kernel"
                failed=$((failed + 1))
            fi
            continue
        elif ((rc == 2)); then
            echo "CANNOT CHANGE  $key: cannot read it"
            failed=$((failed + 1))
            continue
        fi
        evaluate "$mode" "$CUR" "$want"
        if [[ $CUR == "$TARGET" ]]; then
            echo "unchanged      $key = $CUR"
            unchanged=$((unchanged + 1))
            continue
        fi
        local before=$CUR
        if write_setting "$key" "$TARGET"; then
            echo "changed        $key: $before -> $TARGET"
            changed=$((changed + 1))
        else
            echo "CANNOT CHANGE  $key: $before, wanted $TARGET ($WRITE_ERR)"
            failed=$((failed + 1))
        fi
    done
    echo "apply: $changed changed, $unchanged already as wanted, $skipped skipped, $failed cannot change"
    if ((failed > 0)); then
        echo "(Settings that cannot change: read-only /proc/sys in a container, or not namespaced;"
        echo " set them on the host, e.g. docker run --sysctl key=value, or with sysctl.d there.)"
    fi
    return 0
}

cmd_revert() {
    local i key orig rc restored=0 unchanged=0 failed=0
    need_root revert
    [[ -f $BACKUP ]] || die "no backup at $BACKUP: nothing to revert (apply not run, or already reverted)"
    parse_sysctl_file "$BACKUP"
    for i in "${!P_KEYS[@]}"; do
        key=${P_KEYS[i]}
        orig=${P_VALS[i]}
        rc=0
        read_setting "$key" || rc=$?
        if ((rc != 0)); then
            echo "CANNOT RESTORE $key: not present or unreadable now (was $orig)"
            failed=$((failed + 1))
            continue
        fi
        if [[ $CUR == "$orig" ]]; then
            echo "unchanged      $key = $CUR"
            unchanged=$((unchanged + 1))
            continue
        fi
        local before=$CUR
        if write_setting "$key" "$orig"; then
            echo "restored       $key: $before -> $orig"
            restored=$((restored + 1))
        else
            echo "CANNOT RESTORE $key: $before, backup has $orig ($WRITE_ERR)"
            failed=$((failed + 1))
        fi
    done
    echo "revert: $restored restored, $unchanged already as in the backup, $failed cannot restore"
    if ((failed > 0)); then
        die "kept $BACKUP since some settings were not restored"
    fi
    mv -f -- "$BACKUP" "$BACKUP.reverted" || die "restored, but cannot move $BACKUP aside"
    echo "Backup moved to $BACKUP.reverted; the next apply takes a fresh backup."
}

main() {
    local cmd=${1:-check}
    (($# <= 1)) || {
        usage >&2
        exit 2
    }
    case $cmd in
    check) cmd_check ;;
    apply) cmd_apply ;;
    revert) cmd_revert ;;
    -h | --help | help) usage ;;
    *)
        echo "tune-host: unknown command '$cmd'" >&2
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
