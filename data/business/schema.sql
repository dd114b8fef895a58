-- Nordbrew's business database (the demo's NL->SQL side). Loaded by `kb demo` with seed.py.
CREATE TABLE customers (
    id INT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(200) NOT NULL,
    city VARCHAR(60) NOT NULL,
    country CHAR(2) NOT NULL COMMENT 'ISO country code, e.g. FI, SE, EE, DE',
    segment ENUM('consumer', 'business') NOT NULL,
    created_at DATE NOT NULL COMMENT 'sign-up date'
) COMMENT 'Nordbrew customers';
CREATE TABLE products (
    id INT PRIMARY KEY,
    sku VARCHAR(20) NOT NULL UNIQUE,
    name VARCHAR(100) NOT NULL COMMENT 'e.g. Barista Pro, Grinder Duo',
    category VARCHAR(40) NOT NULL COMMENT 'espresso machine, grinder, brewing, milk, consumable',
    price DECIMAL(10, 2) NOT NULL COMMENT 'list price in EUR',
    warranty_months INT NOT NULL
) COMMENT 'products sold by Nordbrew';
CREATE TABLE orders (
    id INT PRIMARY KEY,
    customer_id INT NOT NULL,
    ordered_at DATE NOT NULL,
    delivered_at DATE NULL COMMENT 'carrier-confirmed delivery date; the 30-day return window starts here',
    status ENUM('placed', 'shipped', 'delivered', 'cancelled') NOT NULL,
    total DECIMAL(10, 2) NOT NULL COMMENT 'order total in EUR',
    KEY (customer_id), KEY (ordered_at),
    FOREIGN KEY (customer_id) REFERENCES customers (id)
) COMMENT 'customer orders';
CREATE TABLE order_items (
    id INT PRIMARY KEY,
    order_id INT NOT NULL,
    product_id INT NOT NULL,
    quantity INT NOT NULL,
    unit_price DECIMAL(10, 2) NOT NULL COMMENT 'price per unit in EUR when ordered',
    KEY (order_id), KEY (product_id),
    FOREIGN KEY (order_id) REFERENCES orders (id),
    FOREIGN KEY (product_id) REFERENCES products (id)
) COMMENT 'order lines';
CREATE TABLE returns (
    id INT PRIMARY KEY,
    order_id INT NOT NULL,
    product_id INT NOT NULL,
    requested_at DATE NOT NULL COMMENT 'when the customer asked to return the product',
    reason ENUM('faulty', 'wrong item', 'changed mind', 'damaged in transit', 'other') NOT NULL,
    status ENUM('requested', 'approved', 'refused', 'refunded') NOT NULL COMMENT 'the decision so far: requested = not decided yet (every return was requested, whatever its status)',
    refund_amount DECIMAL(10, 2) NOT NULL DEFAULT 0 COMMENT 'EUR refunded; 0 when not refunded',
    KEY (order_id), KEY (requested_at),
    FOREIGN KEY (order_id) REFERENCES orders (id),
    FOREIGN KEY (product_id) REFERENCES products (id)
) COMMENT 'return requests (RMA)';
CREATE TABLE support_tickets (
    id INT PRIMARY KEY,
    customer_id INT NOT NULL,
    product_id INT NULL,
    opened_at DATETIME NOT NULL,
    closed_at DATETIME NULL COMMENT 'NULL while the ticket is not closed',
    priority ENUM('low', 'normal', 'high', 'urgent') NOT NULL,
    status ENUM('open', 'pending', 'closed') NOT NULL,
    subject VARCHAR(200) NOT NULL,
    KEY (customer_id), KEY (opened_at),
    FOREIGN KEY (customer_id) REFERENCES customers (id),
    FOREIGN KEY (product_id) REFERENCES products (id)
) COMMENT 'customer support tickets';
