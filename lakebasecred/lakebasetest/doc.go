// Package lakebasetest is a fake Databricks control plane for tests that
// use Lakebase without a workspace: an httptest server on 127.0.0.1 that
// serves the REST paths lakebasecred calls, and a real databricks-sdk-go
// WorkspaceClient pointed at it.
//
// Use it to test your own app offline: the app gets its
// *databricks.WorkspaceClient from the fake instead of
// databricks.NewWorkspaceClient(), and everything above the client (target
// resolution, token caching, the connector, your code) runs for real.
//
// # What it serves
//
//   - GET  /api/2.0/database/instances/{name} and GET /api/2.0/database/instances
//     (paged): provisioned instances, added with AddInstance.
//   - POST /api/2.0/database/credentials: a token for an instance.
//   - GET  /api/2.0/preview/scim/v2/Me: the current user (SetUserName).
//   - GET  /api/2.0/postgres/projects/{p}/branches/{b}/endpoints/{e} and
//     GET /api/2.0/postgres/projects/{p}/branches/{b}/endpoints (paged):
//     autoscaling endpoints, added with AddEndpoint.
//   - POST /api/2.0/postgres/credentials: a token for an endpoint.
//
// Errors use the Databricks error body ({"error_code": ..., "message": ...}),
// so the SDK maps them to its usual errors (apierr.ErrNotFound and so on).
// Requests without the fake's PAT get 401.
//
// # Tokens
//
// Every minted token is random and distinct, expires after the lifetime set
// with SetTokenLifetime (one hour by default; NoExpiry returns no expiry at
// all), and is passed to the OnMint hook before the client gets it, so a
// test can make it the password of a real PostgreSQL role with
// Mint.AlterRoleSQL. Mints and Lookup report what was handed out.
//
// # Failures, delays and counters
//
// Fail makes an operation answer with an HTTP status for the next N calls
// or until ClearFailures; SetDelay slows an operation down; Calls counts the
// requests of each operation. The clients of WorkspaceClient end the SDK's
// retry loop for 429 and 503 after one second, so such failures surface in
// about a second instead of minutes; Config returns the configuration to
// change that.
//
// # Testing an app offline
//
// A complete test: the app's token source logs in to a local PostgreSQL
// whose role password follows each minted token.
//
//	func TestAppOnLakebase(t *testing.T) {
//		ctx := context.Background()
//		admin, err := sql.Open("pgx", os.Getenv("TEST_DATABASE_URL")) // a superuser on a local PostgreSQL
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer admin.Close()
//		if _, err := admin.ExecContext(ctx, `CREATE ROLE "app@example.com" LOGIN`); err != nil {
//			t.Fatal(err)
//		}
//
//		fake := lakebasetest.NewServer(t) // closed when the test ends
//		fake.SetUserName("app@example.com")
//		fake.AddInstance(lakebasetest.Instance{Name: "my-instance", ReadWriteDNS: "127.0.0.1"})
//		fake.OnMint(func(m lakebasetest.Mint) error {
//			_, err := admin.ExecContext(ctx, m.AlterRoleSQL()) // the token becomes the role's password
//			return err
//		})
//
//		src, err := lakebasecred.New(ctx, fake.WorkspaceClient(), lakebasecred.Target{Instance: "my-instance"})
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer src.Close()
//		tok, err := src.Token(ctx)
//		if err != nil {
//			t.Fatal(err)
//		}
//		// Log in as src.User() at src.Host() with tok as the password, or
//		// pass src to connector.ForLakebase and run the app on the *sql.DB.
//		_ = tok
//
//		if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 1 {
//			t.Errorf("%d credential calls, want 1", n)
//		}
//	}
//
// Failure paths are one line each:
//
//	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusServiceUnavailable, 0) // until ClearFailures
//	fake.SetDelay(lakebasetest.OpDatabaseCredential, 2*time.Second)
//	fake.SetTokenLifetime(4 * time.Second) // fast rotation
//	fake.SetTokenLifetime(lakebasetest.NoExpiry)
package lakebasetest
