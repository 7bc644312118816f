#!/usr/bin/env python3
# Counting UDP proxy (for tests/tools/send-cost.sh): listen on 127.0.0.1:LISTEN, forward to 127.0.0.1:TARGET.
# Writes "up down" byte totals (UDP payloads) to COUNTFILE every 0.1 s.
import socket, sys, select, time
listen, target, countfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", listen))
clients = {}  # client addr -> upstream socket
back = {}     # upstream socket fileno -> (sock, client addr)
up = down = 0
last = 0
while True:
    socks = [front] + [s for s, _ in back.values()]
    r, _, _ = select.select(socks, [], [], 0.1)
    for s in r:
        if s is front:
            data, addr = front.recvfrom(65535)
            u = clients.get(addr)
            if u is None:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("127.0.0.1", 0))
                clients[addr] = u
                back[u.fileno()] = (u, addr)
            u.sendto(data, ("127.0.0.1", target))
            up += len(data)
        else:
            u, addr = back[s.fileno()]
            data, _ = u.recvfrom(65535)
            front.sendto(data, addr)
            down += len(data)
    now = time.time()
    if now - last > 0.1:
        with open(countfile + ".tmp", "w") as f:
            f.write(f"{up} {down}\n")
        import os; os.replace(countfile + ".tmp", countfile)
        last = now
