"""The world a hostile agent on the real node tries to reach, and the model
that drives it (e2e/node.sh, step "hostile").

One process, on the node's address:
- a scripted OpenAI-compatible server: each chat completion answers with
  the next tool call of --script (a JSON list of {"name", "arguments"}),
  then `finish`; every request body is appended to --requests, so the test
  can look for secrets the model was shown;
- a TCP and a UDP listener: every connection or datagram they receive is
  appended to --hits (the attack must leave it empty).

Runs until killed; prints "ready" once every socket listens.
"""

import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--model-port", type=int, required=True)
    parser.add_argument("--tcp-port", type=int, required=True)
    parser.add_argument("--udp-port", type=int, required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--requests", required=True)
    parser.add_argument("--hits", required=True)
    args = parser.parse_args()

    with open(args.script) as f:
        script = json.load(f)
    lock = threading.Lock()
    served = [0]

    def record(path, line):
        with lock, open(path, "a") as f:
            f.write(line + "\n")

    class Model(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record(args.requests, body.decode("utf-8", "replace").replace("\n", " "))
            with lock:
                i = served[0]
                served[0] += 1
            call = script[i] if i < len(script) else {
                "name": "finish", "arguments": {"summary": "done"}}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": call["name"],
                                 "arguments": json.dumps(call["arguments"])},
                }],
            }
            reply = json.dumps({
                "id": f"chatcmpl-{i}", "object": "chat.completion", "created": 0,
                "model": "scripted",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_):
            pass

    model = ThreadingHTTPServer((args.bind, args.model_port), Model)

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((args.bind, args.tcp_port))
    tcp.listen(16)

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.bind, args.udp_port))

    def accept_tcp():
        while True:
            conn, peer = tcp.accept()
            record(args.hits, f"tcp from {peer[0]}")
            conn.close()

    def receive_udp():
        while True:
            data, peer = udp.recvfrom(4096)
            record(args.hits, f"udp from {peer[0]}: {data[:64]!r}")

    threading.Thread(target=accept_tcp, daemon=True).start()
    threading.Thread(target=receive_udp, daemon=True).start()
    open(args.hits, "a").close()
    open(args.requests, "a").close()
    print("ready", flush=True)
    model.serve_forever()


if __name__ == "__main__":
    main()
