#!/usr/bin/env bash
# Makes the committed samples once, with Debian's ffmpeg. Nothing at run time needs ffmpeg.
# Three streams that look and sound different, for the three producers `npm start` runs:
#   sample.mjpeg / sample.wav   "Test card": testsrc2 with a frame counter; a two-tone melody
#   bars.mjpeg / bars.wav       "Colour bars": SMPTE HD bars with a moving white bar; a 1 kHz tone, beeping
#   night.mjpeg / night.wav     "Night shift": Conway's game of life in blue; a low chord
# Each: Motion-JPEG (JPEG images back to back), 320x240, 12 fps, 10 s (120 frames); audio 8 kHz
# mono G.711 mu-law WAV (RTP payload type 0's format), 10 s.
set -euo pipefail
cd "$(dirname "$0")"
label() { echo "drawtext=text='$1 %{n}':x=8:y=8:fontsize=20:fontcolor=white:box=1:boxcolor=black@0.6"; }
mjpeg() { # output, then ffmpeg input arguments and a filter graph; the label is dropped where drawtext is missing
  local out=$1 graph=$2; shift 2
  ffmpeg -hide_banner -loglevel error -y "$@" -filter_complex "$graph" -t 10 -c:v mjpeg -q:v "${Q:-6}" -f mjpeg "$out" 2>/dev/null \
  || ffmpeg -hide_banner -loglevel error -y "$@" -filter_complex "${graph%,drawtext=*}" -t 10 -c:v mjpeg -q:v "${Q:-6}" -f mjpeg "$out"
}
wav() { ffmpeg -hide_banner -loglevel error -y -f lavfi -i "aevalsrc='$2':s=8000:d=10" -ac 1 -c:a pcm_mulaw "$1"; }

mjpeg sample.mjpeg "[0]$(label Framecast)" -f lavfi -i "testsrc2=size=320x240:rate=12"
mjpeg bars.mjpeg "[0][1]overlay=x='mod(t*96,320)':y=0:shortest=1,$(label 'Colour bars')" \
  -f lavfi -i "smptehdbars=size=320x240:rate=12" -f lavfi -i "color=white@0.8:size=12x240:rate=12"
Q=10 mjpeg night.mjpeg "[0]scale=320:240:flags=neighbor,$(label 'Night shift')" \
  -f lavfi -i "life=size=80x60:rate=12:mold=10:ratio=0.3:death_color=#102040:life_color=#40c0ff:mold_color=#204080"
# Sounds that tell the streams apart, and make a gap or a reordering audible.
wav sample.wav '0.4*sin(2*PI*(330+110*floor(mod(t*2,4)))*t)'
wav bars.wav '0.3*sin(2*PI*1000*t)*lt(mod(t,1),0.5)'
wav night.wav '0.2*sin(2*PI*110*t)+0.15*sin(2*PI*138.6*t)+0.1*sin(2*PI*164.8*t)'
ls -l ./*.mjpeg ./*.wav
