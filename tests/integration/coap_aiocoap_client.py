#!/usr/bin/env python3
"""A CoAP device for the integration tests, on aiocoap (an independent CoAP implementation).

   coap_aiocoap_client.py URI CONTENT_FORMAT PAYLOAD_FILE [--non]

POSTs the file's bytes (aiocoap splits bodies above 1024 bytes into Block1 transfers by itself)
and prints one line: the response code ("2.04") and the payload, or "timeout" for a NON
request whose response never came (NON is best effort).
"""
import asyncio
import sys

import aiocoap


async def main() -> int:
    uri, content_format, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    non = "--non" in sys.argv[4:]
    with open(path, "rb") as file:
        payload = file.read()
    context = await aiocoap.Context.create_client_context()
    try:
        request = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload,
                                  transport_tuning=aiocoap.Unreliable if non else aiocoap.Reliable)
        request.opt.content_format = content_format
        try:
            response = await asyncio.wait_for(context.request(request).response, timeout=20)
        except asyncio.TimeoutError:
            print("timeout")
            return 0
        print(f"{response.code.dotted} {response.payload.decode(errors='replace')}")
        return 0
    finally:
        await context.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
