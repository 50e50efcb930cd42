import { afterEach, describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { ChangePassword, passwordProblem } from "./pages/Account";

afterEach(() => vi.unstubAllGlobals());

const type = (label: string, value: string) => fireEvent.change(screen.getByLabelText(label), { target: { value } });

describe("change password", () => {
  it("says what is wrong before sending", () => {
    expect(passwordProblem("short", "short")).toMatch(/at least 8/);
    expect(passwordProblem("long enough", "long enougH")).toMatch(/differ/);
    expect(passwordProblem("long enough", "long enough")).toBeNull();
  });

  it("sends the current and the new password, shows the API's problem, then success", async () => {
    const sent: any[] = [];
    let answer = new Response(JSON.stringify({ detail: "the current password is wrong",
      errors: [{ pointer: "/current_password", message: "not this account's password" }] }), { status: 422 });
    vi.stubGlobal("fetch", vi.fn(async (_url: string, init: RequestInit) => { sent.push(JSON.parse(init.body as string)); return answer; }));
    render(<ChangePassword />);
    const button = screen.getByRole("button", { name: "Change password" });
    type("Current password", "old password");
    type("New password", "a better one");
    type("New password again", "a better on");
    expect(screen.getByTestId("password-problem")).toHaveTextContent("differ");
    expect(button).toBeDisabled();
    type("New password again", "a better one");
    expect(button).toBeEnabled();
    fireEvent.click(button);
    expect(await screen.findByText("/current_password")).toBeInTheDocument();
    expect(sent[0]).toEqual({ current_password: "old password", new_password: "a better one" });
    answer = new Response(JSON.stringify({ user: { email: "a@b.c" } }), { status: 200 });
    fireEvent.click(button);
    expect(await screen.findByRole("status")).toHaveTextContent("other sessions have ended");
    await waitFor(() => expect(screen.getByLabelText("Current password")).toHaveValue(""));
  });
});
