"""HTTP routes of accounts: their state, the day's session, and the broker login flow."""

from __future__ import annotations

import html
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect

from ticker_service.accounts.schemas import AccountView, SessionRequest
from ticker_service.accounts.service import AccountsService
from ticker_service.orders.service import OrderService
from ticker_service.portfolio import service as portfolio
from ticker_service.system.access import Access, authorized
from ticker_service.system.contract import ErrorBody, answer, answers
from ticker_service.system.errors import ApiError

Text = Annotated[str | None, QueryParameter(required=False, max_length=512)]


def _page(title: str, message: str, status_code: int) -> Response[str]:
    """The small page a browser sees at the end of a login."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Ticker Service</title></head>"
        f"<body style='font-family: sans-serif; margin: 3em'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p><p><a href='/desk#health'>Back to the desk</a></p></body></html>"
    )
    return Response(body, status_code=status_code, media_type=MediaType.HTML)


LOGIN_REFUSED = {
    400: "The broker's login did not succeed, or it refused the request_token",
    401: "The nonce is missing, unknown, expired or already used",
    403: "The login was of another user_id than the account's",
    409: "The account's broker has no sessions, or TICKER_SECRET_KEY is not set",
    503: "The broker could not be reached",
}


class AccountsController(Controller):
    path = "/accounts"
    tags = ["accounts"]

    @get("/", summary="Accounts the key may use: broker, state and why, orders today", opt=Access.visible())
    async def list_accounts(
        self,
        request: Request[Any, Any, Any],
        accounts_service: NamedDependency[AccountsService],
        account_id: Annotated[str | None, QueryParameter(required=False, max_length=64)] = None,
    ) -> list[AccountView]:
        return await accounts_service.views(authorized(request).accounts)

    @get("/{account_id:str}", summary="One account", opt=Access.path())
    async def get_account(
        self, account_id: FromPath[str], accounts_service: NamedDependency[AccountsService]
    ) -> AccountView:
        return await accounts_service.view(account_id)

    @put(
        "/{account_id:str}/session",
        summary="The day's broker session: an access_token, or a request_token to exchange",
        description="Checked with the broker, stored encrypted, used by every instance within seconds. "
        "Never shown again.",
        opt=Access.path()
        | answers(
            {
                403: answer(ErrorBody, "The session belongs to another user_id than the account's"),
                409: answer(ErrorBody, "The account's broker has no sessions, or TICKER_SECRET_KEY is not set"),
                503: answer(ErrorBody, "The broker could not be reached to check the session"),
            }
        ),
    )
    async def set_session(
        self,
        account_id: FromPath[str],
        data: JSONBody[SessionRequest],
        accounts_service: NamedDependency[AccountsService],
    ) -> AccountView:
        return await accounts_service.set_session(account_id, data)

    @post(
        "/{account_id:str}/paper/reset",
        summary="Start a paper account over: its starting funds, no orders, positions or holdings",
        description="422 for an account at a live broker. The service's own history (tasks, events) is kept.",
        status_code=200,
        opt=Access.path(),
    )
    async def reset_paper(
        self,
        account_id: FromPath[str],
        order_service: NamedDependency[OrderService],
        accounts_service: NamedDependency[AccountsService],
    ) -> AccountView:
        await portfolio.reset(order_service.broker(account_id))
        return await accounts_service.view(account_id)

    @get(
        "/{account_id:str}/login",
        summary="Start the broker's login (a browser; the key may be given as ?api_key=)",
        status_code=302,
        opt=Access.path(browser=True)
        | answers({409: answer(ErrorBody, "The account's broker has no login, or TICKER_SECRET_KEY is not set")}),
        include_in_schema=True,
    )
    async def login(self, account_id: FromPath[str], accounts_service: NamedDependency[AccountsService]) -> Redirect:
        return Redirect(path=await accounts_service.login_url(account_id), status_code=302)

    @get(
        "/{account_id:str}/callback",
        summary="Where the broker sends the browser back (the URL to register with Kite)",
        description="Authenticated by the one-time nonce the login started with, not by an API key.",
        media_type=MediaType.HTML,
        # a refusal of the login itself is a page for the browser, not JSON
        opt=Access.signed()
        | answers({status: answer(str, why, MediaType.HTML) for status, why in LOGIN_REFUSED.items()}),
    )
    async def callback(
        self,
        account_id: FromPath[str],
        accounts_service: NamedDependency[AccountsService],
        request_token: Text = None,
        status: Text = None,
        nonce: Text = None,
    ) -> Response[str]:
        try:
            message = await accounts_service.callback(account_id, request_token, status, nonce)
        except ApiError as exc:
            return _page("Login refused", exc.message, exc.status_code)
        return _page("Logged in", message, 200)
