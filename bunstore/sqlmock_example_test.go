package bunstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
)

// Testing an app's error handling with go-sqlmock: every protocol call is
// one statement on PostgreSQL, so one expectation per call. The items of
// AddItems are one []string argument (a text[] parameter for pgx), so the
// mock gets a value converter that passes arguments through as they are:
//
//	type passThrough struct{}
//
//	func (passThrough) ConvertValue(v any) (driver.Value, error) { return v, nil }
func Example_sqlmock() {
	sqldb, mock, err := sqlmock.New(sqlmock.ValueConverterOption(passThrough{}))
	if err != nil {
		panic(err)
	}
	defer sqldb.Close()
	store, err := bunstore.New(bun.NewDB(sqldb, pgdialect.New()))
	if err != nil {
		panic(err)
	}

	mock.ExpectExec(`INSERT INTO "agent_messages"`).
		WithArgs("user-789", []string{`{"role":"user","content":"hi"}`}).
		WillReturnError(errors.New("connection reset"))

	err = store.Session("user-789").AddItems(context.Background(), []json.RawMessage{
		json.RawMessage(`{"role": "user", "content": "hi"}`),
	})
	fmt.Println(err)
	fmt.Println(mock.ExpectationsWereMet())
	// Output:
	// add items to session "user-789": connection reset
	// <nil>
}
