# frozen_string_literal: true

module TaskerCore
  # A database connection of the application's, on which Client.create_task(s) runs its statement so
  # that the task is created inside the transaction the application has open there: an ActiveRecord
  # PostgreSQL connection (ActiveRecord::Base.connection, a model's) or a PG::Connection. The gem
  # depends on neither: it uses the object it is given (nothing requires "pg").
  #
  # The core validates the request and builds the statement (schema-qualified, text parameters, no
  # prepared statement: it assumes nothing of the session); this class only runs it and hands the
  # answer's text back, or turns the database's error into the TaskerCore::Errors class the
  # engine's own create raises (Client.statement_error).
  class CallerConnection
    class << self
      # The connection create_task(connection:) runs on: nil for the engine's own pool (connection
      # false, or nil without an ActiveRecord transaction to join), else a CallerConnection.
      def resolve(connection)
        return nil if connection == false
        return wrap(connection) unless connection.nil?

        joinable_active_record_transaction
      end

      # connection: an ActiveRecord connection (PostgreSQL) or a PG::Connection, else ValidationError.
      def wrap(connection)
        if active_record?(connection)
          adapter = connection.adapter_name.to_s
          unless adapter.match?(/postg/i)
            raise Errors::ValidationError.new("connection: an ActiveRecord #{adapter} connection is not PostgreSQL's; " \
                                              "tasks live in the engine's PostgreSQL database", field: "connection")
          end
          ActiveRecordConnection.new(connection)
        elsif defined?(::PG::Connection) && connection.is_a?(::PG::Connection)
          new(connection)
        else
          raise Errors::ValidationError.new("connection must be an ActiveRecord connection (PostgreSQL) or a " \
                                            "PG::Connection, or false for the engine's own; got #{connection.class}",
                                            field: "connection")
        end
      end

      # Under join_transactions (TaskerCore.config.join_transactions?), the connection of this thread's
      # open ActiveRecord transaction (ActiveRecord::Base's pool), when it is one to join: not a
      # transaction begun with joinable: false, as Rails' transactional tests begin theirs.
      def joinable_active_record_transaction
        return nil unless TaskerCore.config.join_transactions && defined?(::ActiveRecord::Base)

        connection = current_active_record_connection
        return nil unless connection&.transaction_open? && connection.current_transaction.joinable?
        return nil unless connection.adapter_name.to_s.match?(/postg/i)
        return nil unless TaskerCore.config.join_transactions?(warn: true)

        ActiveRecordConnection.new(connection)
      end

      private

      def active_record?(connection)
        defined?(::ActiveRecord::ConnectionAdapters::AbstractAdapter) &&
          connection.is_a?(::ActiveRecord::ConnectionAdapters::AbstractAdapter)
      end

      # The connection this thread holds from ActiveRecord::Base's pool, without checking one out.
      def current_active_record_connection
        pool = ::ActiveRecord::Base.connection_pool
        connection = pool.active_connection?
        return connection || nil unless connection == true # a boolean before Rails 7.1

        pool.respond_to?(:lease_connection) ? pool.lease_connection : pool.connection
      rescue ::ActiveRecord::ActiveRecordError
        nil
      end
    end

    def initialize(connection)
      @connection = connection
    end

    # Runs the statement (sql with text params) and returns the text of its one value (nil for no
    # row or SQL NULL); a failure raises the engine's error for it.
    def select_text(sql, params)
      with_raw { |raw| self.class.exec(raw, sql, params) }
    rescue StandardError => e
      error = statement_error(e)
      raise error if error

      raise
    end

    def self.exec(raw, sql, params)
      result = raw.exec_params(sql, params)
      # Text as PostgreSQL sent it, whatever decoders the connection has (ActiveRecord sets some).
      result.type_map = ::PG::TypeMapAllStrings.new
      result.ntuples.zero? ? nil : result.getvalue(0, 0)
    ensure
      result&.clear
    end

    private

    def with_raw
      yield @connection
    end

    # The TaskerCore error for a failure of the statement (the PG::Error itself, or what ActiveRecord
    # translated it into), or nil when it was something else.
    def statement_error(error)
      pg = error
      pg = pg.cause until pg.nil? || (defined?(::PG::Error) && pg.is_a?(::PG::Error))
      return nil unless pg

      result = pg.respond_to?(:result) ? pg.result : nil
      state = result&.error_field(::PG::Result::PG_DIAG_SQLSTATE)
      message = result&.error_field(::PG::Result::PG_DIAG_MESSAGE_PRIMARY) || pg.message.to_s.strip
      FFI.client_statement_error(state, message.to_s).tap { |e| e.set_backtrace(error.backtrace) if error.backtrace }
    end

    # An ActiveRecord connection: the statement runs on its PG::Connection, after ActiveRecord began
    # the transaction it may have left pending (lazy transactions), and under its lock.
    class ActiveRecordConnection < CallerConnection
      private

      def with_raw(&block)
        # Rails 7.1+: materializes the pending transaction, holds the adapter's lock, marks the
        # transaction as written and translates a failure (the PG::Error stays its cause).
        return @connection.send(:with_raw_connection, &block) if @connection.respond_to?(:with_raw_connection, true)

        @connection.materialize_transactions if @connection.respond_to?(:materialize_transactions)
        yield @connection.raw_connection
      end
    end
  end
end
