#!/bin/sh
# scripts/man-subcommands.sh — print a help2man include file with every subcommand's --help.
#
#   scripts/man-subcommands.sh path/to/facesearch OUTPUT.h2m
#
# The build runs it (CMake target `manpage`) so that `man facesearch` holds each subcommand's
# options, exit status and examples exactly as `facesearch SUB --help` prints them.
set -eu
bin="$1"
exec >"$2"
# roff: a backslash is \e, and a line may not start with . or ' (it would be a request).
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

# [=SECTION] replaces what help2man made of the text before "Usage:"; kept as printed.
printf '[=DESCRIPTION]\n.nf\n'
"$bin" --help | sed -n '/^Usage:/q;p' | roff
printf '.fi\n'
printf '\n[SUBCOMMANDS]\nEach subcommand has its own \\fB\\-\\-help\\fR, shown here.\n'
subcommands() { "$@" --help | awk '/^[A-Za-z].*:$/ { in_subs = ($0 == "Subcommands:"); next } in_subs && /^  [a-z]/ { print $1 }'; }
section() {  # section WORD... : the help of `facesearch WORD...`
  printf '.SS "facesearch %s"\n.nf\n' "$*"
  "$bin" "$@" --help | roff
  printf '.fi\n'
}
subcommands "$bin" | while read -r sub; do
  section "$sub"
  subcommands "$bin" "$sub" | while read -r nested; do section "$sub" "$nested"; done
done
printf '\n[ENVIRONMENT]\n.TP\n.B FACESEARCH_CORPUS\nCorpus directory when \\fB\\-\\-corpus\\fR is not given.\n'
printf '.TP\n.B FACESEARCH_MODELS\nDirectory of the dlib model files when \\fB\\-\\-models\\fR is not given.\n'
printf '.TP\n.B FACESEARCH_CASE\nCase reference for the audit log when \\fB\\-\\-case\\fR is not given.\n'
printf '.TP\n.B NO_COLOR\nWhen set, log lines on stderr are never coloured.\n'
printf '\n[EXIT STATUS]\n0 a match was found (or the command succeeded), 1 no match, 2 an error (as grep);\nthe help of each subcommand above says what counts as a match for it.\n'
printf '\n[SEE ALSO]\ndocs/output.md for the output formats; README.md for a walk-through.\n'
