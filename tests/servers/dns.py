"""A tiny DNS server on 127.0.0.1 answering MX, A, SRV and TXT questions from a table (provider detection and
deliverability tests)."""
from __future__ import annotations

import socket
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset


class TinyDNS:
    """Answers MX, A and SRV look-ups for the names given to ``add_mx``/``add_a``/``add_srv``; NXDOMAIN otherwise."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.mx: dict[str, list[str]] = {}
        self.silent: set[str] = set()
        self.records: dict[tuple[str, int], list[str]] = {}  # (name, rdtype) -> record texts
        self.questions: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((host, 0))
        self.port = self._socket.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tiny-dns", daemon=True)
        self._thread.start()

    def add_mx(self, domain: str, *exchanges: str) -> None:
        """Answer MX look-ups of ``domain`` with these exchanges (first has the lowest preference)."""
        self.mx[domain.lower().rstrip(".")] = list(exchanges)

    def add_a(self, name: str, *addresses: str) -> None:
        """Answer A look-ups of ``name`` with these IPv4 addresses."""
        self.records[(name.lower().rstrip("."), dns.rdatatype.A)] = list(addresses)

    def add_srv(self, name: str, *records: tuple[int, int, int, str]) -> None:
        """Answer SRV look-ups of ``name`` (e.g. "_submissions._tcp.example.com") with (priority, weight,
        port, target) records; a target of "." says the service is not offered (RFC 2782)."""
        self.records[(name.lower().rstrip("."), dns.rdatatype.SRV)] = [
            f"{priority} {weight} {port} {target.rstrip('.')}." for priority, weight, port, target in records]

    def add_txt(self, name: str, *texts: str) -> None:
        """Answer TXT look-ups of ``name`` (SPF, DMARC, DKIM records) with these texts, each one record; a text
        longer than a DNS string (255 bytes) is split into several strings, as DNS hosting panels do."""
        def quoted(text: str) -> str:
            chunks = [text[start:start + 255] for start in range(0, len(text), 255)] or [""]
            return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)

        self.records[(name.lower().rstrip("."), dns.rdatatype.TXT)] = [quoted(text) for text in texts]

    def never_answer(self, domain: str) -> None:
        """Drop questions about ``domain``, like a resolver that is down."""
        self.silent.add(domain.lower().rstrip("."))

    def resolver(self, lifetime: float = 1.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only this server."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        return resolver

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._stopping.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:  # wake the blocked recvfrom now
            waker.sendto(b"", (self.host, self.port))
        self._thread.join(timeout=2)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, client = self._socket.recvfrom(4096)
            except OSError:
                return
            if self._stopping.is_set():
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            question = query.question[0]
            domain = question.name.to_text(omit_final_dot=True).lower()
            self.questions.append(domain)
            if domain in self.silent:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.RA
            if question.rdtype == dns.rdatatype.MX and domain in self.mx:
                records = [f"{10 * (i + 1)} {exchange}." for i, exchange in enumerate(self.mx[domain])]
                response.answer.append(dns.rrset.from_text(question.name, 300, dns.rdataclass.IN,
                                                           dns.rdatatype.MX, *records))
            elif (domain, question.rdtype) in self.records:
                response.answer.append(dns.rrset.from_text(question.name, 300, dns.rdataclass.IN, question.rdtype,
                                                           *self.records[(domain, question.rdtype)]))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self._socket.sendto(response.to_wire(), client)
