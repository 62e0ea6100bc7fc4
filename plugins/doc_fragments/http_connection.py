# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How to reach an HTTP(S) endpoint, documented once. Modules using it take these options at the
    # top level as defaults, and let each endpoint set its own (see the module's description).
    DOCUMENTATION = r"""
options:
  scheme:
    description: Scheme of endpoints given by C(host) (not by C(url)).
    type: str
    choices: [http, https]
    default: http
  port:
    description: TCP port of endpoints given by C(host). Unset means 80 for http, 443 for https.
    type: int
  path:
    description: Request path, with query string if any, of endpoints given by C(host).
    type: str
    default: /
  method:
    description: HTTP method. C(HEAD) gets no body, so it cannot be combined with JSON expectations.
    type: str
    choices: [GET, HEAD]
    default: GET
  status_codes:
    description: Accepted HTTP status codes.
    type: list
    elements: int
    default: [200]
  timeout:
    description: Seconds to wait for the connection and for each read (not for the whole request).
    type: float
    default: 5
  validate_certs:
    description: Verify the server certificate and its name for https.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle file, or a directory of hashed CA certificates, to verify the server with. When set,
        only these CAs are trusted (the system store is not used). https only.
    type: path
  sni_host:
    description:
      - Name sent as TLS SNI and checked against the certificate, while connecting to the host or the
        URL's host, so a TLS endpoint can be checked by IP address. Also sent as the C(Host) header when
        I(host_header) is not set. https only.
    type: str
  host_header:
    description: Value of the C(Host) header. For https it is also the SNI name when I(sni_host) is not set.
    type: str
  headers:
    description:
      - Extra request headers. Values appear in the task's invocation output; put the task under
        C(no_log) if they carry a secret.
    type: dict
    default: {}
"""
