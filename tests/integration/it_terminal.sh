# Step output is made safe on its way to a terminal: colours stay, the
# window title, cursor moves, screen clears, C1 controls and invalid bytes
# do not reach it (kiln logs, kiln submit --wait, annotations); with --raw,
# or off a terminal, the bytes are as the step wrote them.
source "$(dirname "$0")/lib.sh"
command -v script >/dev/null || skip "no script(1) to make a terminal"
start_farm 1
cat >"$T/wf.yml" <<'YML'
name: terminal
on: push
jobs:
  hostile:
    runs-on: self-hosted
    steps:
      - run: |
          printf 'title\033]0;PWNED-TITLE\007 here\n'
          printf '\033[1;31mred\033[0m\n'
          printf 'up\033[2A\033[2Kcleared\033cRESET\n'
          printf 'c1\302\2332Jdone\n'
          printf 'bad\377byte\n'
          echo "::warning title=t\033]0;X\007::ann\033[2Jmsg"
YML
# tty CMD...: runs CMD on a terminal, its output (as the terminal got it)
# in $T/tty.out.
tty() { script -qfec "$*" /dev/null >"$T/tty.out" 2>&1 </dev/null || true; }
tty "$KILN submit --wait $T/wf.yml"
run=$(sqlite3 "$T/history.db" "select max(id) from runs")
check_safe() {
    grep -q $'\033\]' "$T/tty.out" && fail "$1: an OSC sequence reached the terminal: $(cat -v "$T/tty.out")"
    grep -q $'\033\[2A\|\033\[2K\|\033\[2J\|\033c' "$T/tty.out" && fail "$1: a cursor or clear sequence reached the terminal"
    grep -q $'\302\233' "$T/tty.out" && fail "$1: a C1 control reached the terminal"
    grep -q $'\377' "$T/tty.out" && fail "$1: an invalid byte reached the terminal"
    grep -q $'\033\[1;31mred\033\[0m' "$T/tty.out" || fail "$1: the colours were lost: $(cat -v "$T/tty.out")"
    grep -q "PWNED-TITLE here" "$T/tty.out" && fail "$1: the title text was printed"
    grep -q "title here" "$T/tty.out" || fail "$1: text around a sequence was lost: $(cat -v "$T/tty.out")"
}
check_safe "kiln submit --wait"
grep -q "ann" "$T/tty.out" || fail "the annotation is missing: $(cat -v "$T/tty.out")"
pass "kiln submit --wait on a terminal: colours kept, titles, cursor moves, clears, C1 and bad bytes dropped"
tty "$KILN logs $run"
check_safe "kiln logs"
pass "kiln logs on a terminal: the same"
tty "$KILN logs $run --raw"
grep -q $'\033\]0;PWNED-TITLE' "$T/tty.out" || fail "--raw changed the output: $(cat -v "$T/tty.out")"
"$KILN" logs "$run" >"$T/pipe.out"
grep -q $'\033\]0;PWNED-TITLE' "$T/pipe.out" || fail "output to a pipe was changed"
pass "--raw, and output to a pipe, keep the bytes as the step wrote them"
