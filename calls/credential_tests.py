"""The carriers' credential tests (``orgs.credential_checks``): one read-only call through each
carrier's SDK (Twilio: fetch the account; Plivo: get the account details), classified the same
way as the AI providers'. Registered from ``CallsConfig.ready``, because orgs may not import calls."""

from __future__ import annotations

from django.conf import settings

from orgs.credential_checks import classify_status, guard_result, register_credential_test
from orgs.models import Provider


def check_twilio(cred: dict[str, str]) -> tuple[str, str]:
    import requests
    from twilio.base.exceptions import TwilioException, TwilioRestException

    from calls.carriers import CarrierError
    from calls.carriers.twilio_carrier import TwilioCarrier

    try:
        carrier = TwilioCarrier(cred, public_base_url=settings.PUBLIC_BASE_URL)
        account = carrier.client.api.v2010.accounts(cred["account_sid"]).fetch()
    except CarrierError as exc:
        return "other", str(exc)
    except TwilioRestException as exc:
        return classify_status("Twilio", exc.status, f"code {exc.code}: {exc.msg}")
    except (requests.RequestException, TwilioException) as exc:
        return guard_result("Twilio", exc) or ("unreachable", "Twilio could not be reached; check the network "
                                                               "or the base URL.")
    return "ok", f"Twilio accepted the credential: account “{account.friendly_name}” is {account.status}."


def check_plivo(cred: dict[str, str]) -> tuple[str, str]:
    import re

    import requests
    from plivo import exceptions as plivo_errors

    from calls.carriers import CarrierError
    from calls.carriers.plivo_carrier import PlivoCarrier

    try:
        carrier = PlivoCarrier(cred, public_base_url=settings.PUBLIC_BASE_URL)
        account = carrier.client.account.get()
    except CarrierError as exc:
        return "bad_key", str(exc)
    except plivo_errors.AuthenticationError as exc:
        return classify_status("Plivo", 401, str(exc))
    except plivo_errors.ForbiddenError as exc:
        return classify_status("Plivo", 403, str(exc))
    except plivo_errors.PlivoServerError:
        return classify_status("Plivo", 500)
    except plivo_errors.PlivoRestError as exc:
        # The SDK names other statuses only in its message ("Received status code 429 …").
        found = re.search(r"status code (\d{3})", str(exc))
        return classify_status("Plivo", int(found.group(1)) if found else None, "" if found else str(exc))
    except requests.RequestException as exc:
        return guard_result("Plivo", exc) or ("unreachable", "Plivo could not be reached; check the network "
                                                              "or the base URL.")
    name = getattr(account, "name", "") or getattr(account, "account_type", "")
    return "ok", f"Plivo accepted the credential: account “{name}”."


def register() -> None:
    register_credential_test(Provider.TWILIO, check_twilio)
    register_credential_test(Provider.PLIVO, check_plivo)
