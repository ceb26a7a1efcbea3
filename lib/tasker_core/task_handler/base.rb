# frozen_string_literal: true

module TaskerCore
  module TaskHandler
    # A workflow's entry point in application code: names its template and creates its tasks.
    # The steps and their handlers live in the template (config/tasker/tasks/*.yaml under Rails).
    #
    #   class OrderProcess < TaskerCore::TaskHandler::Base
    #     task_name "order_process"
    #     namespace "order_process"
    #     version "1.0.0"
    #
    #     def initialize_task_context(context)
    #       super.merge("requested_at" => Time.now.utc.iso8601)
    #     end
    #   end
    #
    #   OrderProcess.create_task(context: { order_id: 42 })   # => TaskResponse
    class Base
      class << self
        # task_name "x" sets; task_name reads (default: the class name, underscored).
        def task_name(value = nil)
          return @task_name = value.to_s if value

          @task_name || underscore(name.to_s.split("::").last)
        end

        def namespace(value = nil)
          return @namespace = value.to_s if value

          @namespace || "default"
        end

        def version(value = nil)
          return @version = value.to_s if value

          @version || "1.0.0"
        end

        # Creates a task of this template; options as Client.create_task's (tags, priority,
        # idempotency_key, initiator, reason, connection: to create it in the app's transaction, ...).
        def create_task(context: {}, **options)
          new.create_task(context: context, **options)
        end

        # Creates many tasks of this template in one transaction: requests is an Array of Hashes
        # of create_task's keywords ({context:, idempotency_key:, priority:, ...}). Returns an
        # Array of TaskResponse in request order (see Client.create_tasks; connection: as there).
        def create_tasks(requests, connection: nil)
          new.create_tasks(requests, connection: connection)
        end

        def underscore(text)
          text.gsub(/([A-Z\d]+)([A-Z][a-z])/, '\1_\2').gsub(/([a-z\d])([A-Z])/, '\1_\2').downcase
        end
      end

      def create_task(context: {}, **options)
        context = initialize_task_context(PlainData.call(context || {}))
        validate_task_request(context)
        Client.create_task(name: self.class.task_name, namespace: self.class.namespace,
                           version: self.class.version, context: context, **options)
      end

      def create_tasks(requests, connection: nil)
        batch = Client.request_list!(requests).each_with_index.map do |request, i|
          options = Client.request_at!(request, i)
          context = options.delete(:context)
          context = with_index(i) do
            initialize_task_context(PlainData.call(context || {})).tap { |c| validate_task_request(c) }
          end
          options.merge(name: self.class.task_name, namespace: self.class.namespace, version: self.class.version,
                        context: context)
        end
        Client.create_tasks(batch, connection: connection)
      end

      # Override to add to the context before the task is created (call super).
      def initialize_task_context(context)
        context
      end

      # Override to refuse a request beyond the template's input_schema: raise
      # TaskerCore::Errors::ValidationError naming the field.
      def validate_task_request(_context); end

      private

      # A ValidationError raised for requests[index] names the index.
      def with_index(index)
        yield
      rescue Errors::ValidationError => e
        raise Errors::ValidationError.new("requests[#{index}]: #{e.message}", field: e.field,
                                                                           error_code: e.error_code, context: e.context)
      end
    end
  end
end
