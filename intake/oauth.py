"""OAuth2 for mailboxes, the protocol side: device code (RFC 8628), authorization code with
PKCE (RFC 6749 §4.1, RFC 7636), refresh (RFC 6749 §6), and the XOAUTH2 SASL string.

Three form POSTs and a URL: written on the standard library rather than pulling in a client
library whose device-flow support is missing (Authlib has it only server-side) or tied to
one provider (MSAL). Every call has a timeout. What the providers do differently:

- Microsoft identity platform v2: endpoints carry the tenant; public clients send no secret;
  a refresh may return a new refresh token (rotation), which must replace the stored one.
- Google: the device answer says ``verification_url`` (not ``_uri``); the token endpoint
  wants the client secret even for installed apps; a refresh token is only issued to the
  authorization-code flow with ``access_type=offline`` and ``prompt=consent``; Gmail's scope
  is not allowed in Google's device flow (``invalid_scope``), so Google mailboxes connect with
  ``--auth-code``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HTTP_TIMEOUT = 30.0

MICROSOFT_LOGIN = "https://login.microsoftonline.com"
MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)
GOOGLE_DEVICE = "https://oauth2.googleapis.com/device/code"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_SCOPES = ("https://mail.google.com/",)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class OAuthError(Exception):
    """The provider answered with an error, or could not be reached."""

    def __init__(self, message: str, *, error: str = "", transient: bool = True) -> None:
        super().__init__(message)
        self.error = error
        self.transient = transient


class GrantRefused(OAuthError):
    """The refresh token (or device code, or authorization code) was refused for good:
    revoked, expired, the password changed. Only a person connecting again helps."""

    def __init__(self, message: str, *, error: str = "invalid_grant") -> None:
        super().__init__(message, error=error, transient=False)


@dataclass(frozen=True)
class OAuthClient:
    provider: str
    client_id: str
    client_secret: str | None
    token_endpoint: str
    device_endpoint: str | None
    authorize_endpoint: str | None
    scopes: tuple[str, ...]
    redirect_uri: str


def client_from_config(oauth: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> OAuthClient:
    """The client of one ``[dealers.imap.oauth]`` table, with the provider's documented
    endpoints where the table names none."""
    env = os.environ if environ is None else environ
    provider = str(oauth["provider"])
    secret = oauth.get("client_secret")
    if secret is None and oauth.get("client_secret_env"):
        secret = env.get(str(oauth["client_secret_env"])) or None
        if secret is None:
            raise OAuthError(
                f"environment variable {oauth['client_secret_env']} (the OAuth2 client secret) is empty",
                error="configuration",
                transient=False,
            )
    device = authorize = token = None
    scopes: tuple[str, ...] = ()
    if provider == "microsoft":
        tenant = urllib.parse.quote(str(oauth.get("tenant") or "organizations"), safe="")
        base = f"{MICROSOFT_LOGIN}/{tenant}/oauth2/v2.0"
        device, token, authorize = f"{base}/devicecode", f"{base}/token", f"{base}/authorize"
        scopes = MICROSOFT_SCOPES
    elif provider == "google":
        device, token, authorize = GOOGLE_DEVICE, GOOGLE_TOKEN, GOOGLE_AUTHORIZE
        scopes = GOOGLE_SCOPES
    token = oauth.get("token_endpoint") or token
    if not token:
        raise OAuthError("no token endpoint configured", error="configuration", transient=False)
    return OAuthClient(
        provider=provider,
        client_id=str(oauth["client_id"]),
        client_secret=secret,
        token_endpoint=str(token),
        device_endpoint=oauth.get("device_endpoint") or device,
        authorize_endpoint=oauth.get("authorize_endpoint") or authorize,
        scopes=tuple(oauth.get("scopes") or scopes),
        redirect_uri=str(oauth.get("redirect_uri") or "http://localhost"),
    )


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: float
    refresh_token: str | None  # None: the provider kept the old one (no rotation)
    scope: str | None = None


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float
    message: str | None


def _post(url: str, form: dict[str, str], *, timeout: float) -> dict[str, Any]:
    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(
            request, timeout=timeout, context=ssl.create_default_context()
        ) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (OSError, ValueError) as exc:
        raise OAuthError(f"cannot reach {url}: {exc}") from exc
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise OAuthError(f"{url} answered {status} with no JSON") from None
    if not isinstance(data, dict):
        raise OAuthError(f"{url} answered {status} with unexpected JSON")
    if status >= 400 or "error" in data:
        error = str(data.get("error") or f"http_{status}")
        text = str(data.get("error_description") or "").split("\r\n")[0][:300]
        message = f"{error}: {text}" if text else error
        data["_error"], data["_message"], data["_status"] = error, message, status
    return data


def _raise_for_token_error(data: dict[str, Any]) -> None:
    error = data.get("_error")
    if error is None:
        return
    message = str(data["_message"])
    # RFC 6749 §5.2: invalid_grant is the grant itself refused; invalid_client and
    # unauthorized_client are a broken registration: neither heals by retrying.
    if error in ("invalid_grant", "expired_token", "access_denied"):
        raise GrantRefused(message, error=error)
    if error in ("invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"):
        raise OAuthError(message, error=error, transient=False)
    raise OAuthError(message, error=error, transient=int(data.get("_status") or 500) >= 500)


def _grant(data: dict[str, Any]) -> TokenGrant:
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError("the token endpoint answered without an access_token")
    try:
        expires_in = float(data.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600.0
    refresh = data.get("refresh_token")
    return TokenGrant(
        access_token=access,
        expires_in=max(expires_in, 1.0),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=data.get("scope"),
    )


def _client_form(client: OAuthClient) -> dict[str, str]:
    form = {"client_id": client.client_id}
    if client.client_secret:
        form["client_secret"] = client.client_secret
    return form


# -- device code (RFC 8628) ----------------------------------------------------------------
def request_device_code(client: OAuthClient, *, timeout: float = HTTP_TIMEOUT) -> DeviceAuthorization:
    if not client.device_endpoint:
        raise OAuthError(
            f"provider {client.provider!r} has no device endpoint configured; use --auth-code",
            error="configuration",
            transient=False,
        )
    form = {"client_id": client.client_id, "scope": " ".join(client.scopes)}
    if client.provider == "google" and client.client_secret:
        form["client_secret"] = client.client_secret
    data = _post(client.device_endpoint, form, timeout=timeout)
    if data.get("_error"):
        raise OAuthError(str(data["_message"]), error=str(data["_error"]), transient=False)
    uri = data.get("verification_uri") or data.get("verification_url")  # Google says _url
    if not data.get("device_code") or not data.get("user_code") or not uri:
        raise OAuthError("the device endpoint answered without device_code, user_code or URL")
    return DeviceAuthorization(
        device_code=str(data["device_code"]),
        user_code=str(data["user_code"]),
        verification_uri=str(uri),
        verification_uri_complete=data.get("verification_uri_complete"),
        expires_in=float(data.get("expires_in") or 900),
        interval=float(data.get("interval") or 5),
        message=data.get("message"),
    )


@dataclass(frozen=True)
class DevicePending:
    slow_down: bool  # RFC 8628 §3.5: add 5 seconds to the interval


def poll_device_token(
    client: OAuthClient, device_code: str, *, timeout: float = HTTP_TIMEOUT
) -> TokenGrant | DevicePending:
    form = {**_client_form(client), "grant_type": DEVICE_GRANT, "device_code": device_code}
    data = _post(client.token_endpoint, form, timeout=timeout)
    if data.get("_error") in ("authorization_pending", "slow_down"):
        return DevicePending(slow_down=data["_error"] == "slow_down")
    _raise_for_token_error(data)
    return _grant(data)


# -- authorization code with PKCE (RFC 7636) -----------------------------------------------
def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorization_url(
    client: OAuthClient, *, state: str, code_challenge: str, redirect_uri: str, login_hint: str | None
) -> str:
    if not client.authorize_endpoint:
        raise OAuthError(
            f"provider {client.provider!r} has no authorize endpoint configured",
            error="configuration",
            transient=False,
        )
    params = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": " ".join(client.scopes),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    if client.provider == "google":
        # Without these Google issues no refresh token (or only on the very first consent).
        params["access_type"] = "offline"
        params["prompt"] = "consent"
    separator = "&" if "?" in client.authorize_endpoint else "?"
    return client.authorize_endpoint + separator + urllib.parse.urlencode(params)


def exchange_code(
    client: OAuthClient, *, code: str, code_verifier: str, redirect_uri: str, timeout: float = HTTP_TIMEOUT
) -> TokenGrant:
    form = {
        **_client_form(client),
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": code_verifier,
        "redirect_uri": redirect_uri,
    }
    data = _post(client.token_endpoint, form, timeout=timeout)
    _raise_for_token_error(data)
    return _grant(data)


# -- refresh (RFC 6749 §6) -----------------------------------------------------------------
def refresh(client: OAuthClient, refresh_token: str, *, timeout: float = HTTP_TIMEOUT) -> TokenGrant:
    form = {**_client_form(client), "grant_type": "refresh_token", "refresh_token": refresh_token}
    if client.provider == "microsoft":
        form["scope"] = " ".join(client.scopes)  # v2 endpoint: the scopes of the new access token
    data = _post(client.token_endpoint, form, timeout=timeout)
    _raise_for_token_error(data)
    return _grant(data)


def xoauth2_string(user: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response (Google's and Microsoft's IMAP/SMTP docs)."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"
