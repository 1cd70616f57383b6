#!/usr/bin/env bash
# Makes a tiny base image offline from Debian's static busybox: usage make-busybox-image.sh TAG
set -euo pipefail
tag=${1:-oneoff/busybox:latest}
busybox=$(command -v busybox || echo /bin/busybox)
root=${ROOTFS:-$(mktemp -d)}
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "nobody:x:65534:65534:nobody:/:/bin/sh" >> "$root/etc/passwd"
chmod 1777 "$root/tmp"
tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' - "$tag" >/dev/null
echo "$tag"
