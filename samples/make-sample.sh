#!/usr/bin/env bash
# Makes the committed sample once, with Debian's ffmpeg. Nothing at run time needs ffmpeg.
#   samples/sample.mjpeg  Motion-JPEG: 320x240 JPEG images back to back, 12 fps, 10 s (120 frames)
#   samples/sample.wav    8 kHz mono G.711 mu-law WAV (RTP payload type 0's format), 10 s
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=320x240:rate=12:duration=10" \
  -vf "drawtext=text='Framecast %{n}':x=8:y=8:fontsize=20:fontcolor=white:box=1:boxcolor=black@0.6" \
  -c:v mjpeg -q:v 6 -f mjpeg sample.mjpeg 2>/dev/null \
|| ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=320x240:rate=12:duration=10" \
  -c:v mjpeg -q:v 6 -f mjpeg sample.mjpeg
# A rising and falling two-tone melody, so a gap or a reordering is audible.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "aevalsrc='0.4*sin(2*PI*(330+110*floor(mod(t*2,4)))*t)':s=8000:d=10" \
  -ac 1 -c:a pcm_mulaw sample.wav
ls -l sample.mjpeg sample.wav
