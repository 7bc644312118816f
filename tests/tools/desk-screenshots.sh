#!/bin/sh
# Screenshots of tropa-desk for README.md (docs/images/desk-*.png), taken
# the way a person sees the app: the real binary under Xvfb, driven with
# xdotool, captured with ImageMagick's `import`. Needs (Debian): xvfb
# libgl1-mesa-dri libegl1 libxkbcommon-x11-0 imagemagick xdotool.
# Run from the workspace root. Uses display :97 and a demo profile made
# by `examples/scale.rs --demo` (no network: its relay is never reached).
set -eu
out=docs/images
demo=$(mktemp -d)/demo
mkdir -p "$out"
cargo build -q -p tropa-desk
cargo run -q --release -p tropa-desk --example scale -- --demo "$demo"
Xvfb :97 -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true' EXIT
sleep 1
export DISPLAY=:97 LIBGL_ALWAYS_SOFTWARE=1
target/debug/tropa-desk --home "$demo" --lock-minutes 0 &
app=$!
sleep 3
win=$(xdotool search --name "Tropa desk" | head -1)
xdotool windowfocus --sync "$win"
shot() { sleep 1.5; import -window "$win" "$out/desk-$1.png"; echo "$out/desk-$1.png"; }
shot unlock
xdotool mousemove 600 200 click 1
xdotool type --delay 20 "demo lantern quarry velvet"
xdotool key Return
shot cases
xdotool mousemove 1000 400 click 1   # away from any text field
xdotool key Down
shot conversation
xdotool key Down Down Down Down
shot case
